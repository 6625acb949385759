"""`python -m traffic_duplicator.report`: see traffic_duplicator.report.cli."""

from __future__ import annotations

import sys

from traffic_duplicator.report.cli import main

if __name__ == "__main__":
    sys.exit(main())
