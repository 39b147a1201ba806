"""`python -m convcov_core ...`: the command line (see convcov_core.cli)."""

import sys

from .cli import main

sys.exit(main())
