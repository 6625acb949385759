"""`start-traffic-duplicator`: runs the app, the replayer and the tee proxy as one dyno process.

Nothing outside this package imports it: the engines (`proxy`, `replay`) run as child
processes and know nothing of the wrapper.
"""
