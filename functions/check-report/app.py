"""check-report: poll a PDF report once and say whether to wait, download, or record its end."""

from abrecon import contracts, steps
from abrecon.handler import step_handler

lambda_handler = step_handler(contracts.CheckReportInput, steps.check_report)
