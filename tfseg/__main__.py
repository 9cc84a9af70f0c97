"""Entry point of `python -m tfseg`."""

import sys

from tfseg.cli import main

sys.exit(main())
