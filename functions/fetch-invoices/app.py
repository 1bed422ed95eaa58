"""fetch-invoices: look up the invoices of the run line items and list the PDF reports to ask for."""

from abrecon import contracts, steps
from abrecon.handler import step_handler

lambda_handler = step_handler(contracts.RunContext, steps.fetch_invoices)
