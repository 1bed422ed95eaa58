"""check-payments: ask Amazon for the payment status and due date of the run's invoices and earlier unpaid ones."""

from abrecon import payments, steps
from abrecon.handler import step_handler

lambda_handler = step_handler(steps.RunContext, payments.check_payments)
