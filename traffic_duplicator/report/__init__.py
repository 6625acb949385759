"""The comparison report: reads `at=compare` log lines back and prints one row per
destination and route (issue 10 section 6). Runs on a laptop or in CI, not on the dyno."""
