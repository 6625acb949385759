"""The built-in tee proxy: relays each client connection to the app, copies requests to mirrors.

Run as `python -m traffic_duplicator.proxy -l PORT -r HOST:PORT -d HOST:PORT` (em-proxy's
command line). Modules, one job each: `cli` (argv to config), `config` (the frozen
records), `server` (listener, signals, shutdown), `pair` (what one client/app pair
decides), moved by one of two cores: `poller` with `rawpair` (raw sockets on one epoll,
Linux) or `relay` (asyncio protocols); `tap` (frames a connection's requests and hands
them to mirrors), `mirror` (per-target connection pools, buffers, drop policy) with
`health` (its state machine), `framing` (raw HTTP or gor), `connection` and `dialer`,
`responses` (response tracking) and `counters`.
"""
