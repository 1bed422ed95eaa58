"""fetch-transactions: page through getTransactions for the run window and keep every line item in S3."""

from abrecon import contracts, steps
from abrecon.handler import step_handler

lambda_handler = step_handler(contracts.FetchTransactionsInput, steps.fetch_transactions)
