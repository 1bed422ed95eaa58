"""download-document: fetch a finished report document and store every PDF in it under SSE-KMS."""

from abrecon import contracts, steps
from abrecon.handler import step_handler

lambda_handler = step_handler(contracts.DownloadDocumentInput, steps.download_document)
