"""`abrecon sandbox run`: the orchestration of one run, its audit, its summary, its export and its console output."""
