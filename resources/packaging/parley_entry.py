"""The bundle's entry point: one executable for the window and for the backend child.

parley                      the window
parley --selftest           the headless check of text and sound
parley --backend serve ...  the backend (how the app starts its child in a bundle)
parley --check-bundle       checks that every packaged component loads (installer tests)
"""

from __future__ import annotations

import sys


def main() -> int:
    if sys.argv[1:2] == ["--check-bundle"]:
        from parley_bundle_check import main as check_bundle

        return check_bundle(sys.argv[2:])
    from assistant.main import main as run_parley

    return run_parley()


if __name__ == "__main__":
    sys.exit(main())
