"""abrecon: Amazon Business invoices and credit memos into your books (the Lambda layer package)."""
