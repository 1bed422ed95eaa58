"""`python -m abrecon_sandbox.bench [--large]`."""

import sys

from abrecon_sandbox.bench.benchmark import main

sys.exit(main())
