"""``python -m superwidgets.scale``: see :mod:`superwidgets.scale.cli` (``--help`` lists the subcommands)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
