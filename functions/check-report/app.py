"""check-report: poll a PDF report once and say whether to wait, download, or record its end."""

from abrecon import steps
from abrecon.handler import step_handler

lambda_handler = step_handler(steps.CheckReportInput, steps.check_report)
