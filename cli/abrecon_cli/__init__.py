"""The `abrecon` command line."""
