"""`python -m traffic_duplicator COMMAND [ARGS...]`: the same as `start-traffic-duplicator`."""

from __future__ import annotations

from traffic_duplicator.wrapper.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
