"""The built-in replayer: gor's role (`--input-http` plus GoReplay's options), stdlib only.

Run as `python -m traffic_duplicator.replay --input-http [HOST]:PORT [GoReplay options...]`.
Modules: `config` (flags to frozen records), `request` and `modifier` (GoReplay's filters
and rewrites, pure), `limits`, `response` (incremental response reader), `output_http`,
`output_stream` (file and stdout), `inputs`, `stats`, `engine` (wiring and shutdown), `cli`.
"""
