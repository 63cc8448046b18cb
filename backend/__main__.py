"""``python -m backend``: the same as ``parley-backend``."""

import sys

from backend.cli import main

sys.exit(main())
