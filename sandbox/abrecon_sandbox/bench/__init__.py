"""The benchmark (`python -m abrecon_sandbox.bench [--large]`): the pipeline against its floor and the naive flow."""
