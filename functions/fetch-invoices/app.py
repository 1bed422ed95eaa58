"""fetch-invoices: look up the invoices of the run line items and list the PDF reports to ask for."""

from abrecon import steps
from abrecon.handler import step_handler

lambda_handler = step_handler(steps.RunContext, steps.fetch_invoices)
