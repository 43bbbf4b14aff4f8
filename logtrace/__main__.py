"""``python -m logtrace``: the ``logtrace`` command."""

from __future__ import annotations

import sys

from logtrace.cli import main

if __name__ == "__main__":
    sys.exit(main())
