"""``python -m assistant``: the same as ``parley``."""

import sys

from assistant.main import main

sys.exit(main())
