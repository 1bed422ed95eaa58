"""start-run: the daily schedule's entry point; starts the run for the scheduled time, once, under a dated name."""

from abrecon import runs
from abrecon.handler import step_handler

lambda_handler = step_handler(runs.ScheduledStart, runs.start_scheduled_run)
