"""`python -m traffic_duplicator.options PATH [--gor-available]`."""

import sys

from traffic_duplicator.options.cli import main

sys.exit(main())
