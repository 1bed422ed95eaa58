"""summarize-run: account for every line item and invoice of the run and word the summary for finance."""

from abrecon import steps
from abrecon.handler import step_handler

lambda_handler = step_handler(steps.RunContext, steps.summarize_run)
