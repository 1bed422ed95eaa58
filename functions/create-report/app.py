"""create-report: ask Amazon once for an invoice PDF report (GET_AB_INVOICE_PDF)."""

from abrecon import contracts, steps
from abrecon.handler import step_handler

lambda_handler = step_handler(contracts.CreateReportInput, steps.create_report)
