"""`python -m traffic_duplicator.proxy`: see traffic_duplicator.proxy.cli."""

from __future__ import annotations

import sys

from traffic_duplicator.proxy.cli import main

if __name__ == "__main__":
    sys.exit(main())
