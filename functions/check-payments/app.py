"""check-payments: ask Amazon for the payment status and due date of the run's invoices and earlier unpaid ones."""

from abrecon import contracts, steps
from abrecon.handler import step_handler

lambda_handler = step_handler(contracts.RunContext, steps.check_payments)
