"""summarize-run: account for every line item and invoice of the run and word the summary for finance."""

from abrecon import contracts, steps
from abrecon.handler import step_handler

lambda_handler = step_handler(contracts.RunContext, steps.summarize_run)
