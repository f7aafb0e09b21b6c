"""`python -m toolkit`: see toolkit/cli.py."""

import sys

from toolkit.cli import main

sys.exit(main())
