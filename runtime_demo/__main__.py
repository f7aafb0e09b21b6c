"""`python -m runtime_demo`: see runtime_demo/cli.py."""

import sys

from runtime_demo.cli import main

sys.exit(main())
