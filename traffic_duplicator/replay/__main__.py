"""`python -m traffic_duplicator.replay`: see traffic_duplicator.replay.cli."""

from __future__ import annotations

import sys

from traffic_duplicator.replay.cli import main

if __name__ == "__main__":
    sys.exit(main())
