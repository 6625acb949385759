"""Shadow comparison: did each destination answer like production did? (issue 10)

The engines talk to this package through two small interfaces:

- the tee proxy records production's responses with `capture.ResponseRecorder` and sends
  each as a GoReplay type `2` message built by `capture.encode_response`;
- the replayer decodes those with `capture.decode_response`, records each destination's
  response with a `ResponseRecorder` of its own, and hands both to a `comparer.Comparer`,
  whose `tick()` and `close()` return the log lines to write.

Everything else (pairing, diffing, routes, histograms, the noise rule, log lines) is
internal and pure, driven by injected clocks. `python -m traffic_duplicator.report` reads
the lines back.
"""

from traffic_duplicator.compare.capture import ResponseRecorder, decode_response, encode_response
from traffic_duplicator.compare.comparer import Comparer
from traffic_duplicator.compare.model import CapturedResponse
from traffic_duplicator.compare.settings import CompareSettings, read_compare_settings

__all__ = [
    "CapturedResponse",
    "CompareSettings",
    "Comparer",
    "ResponseRecorder",
    "decode_response",
    "encode_response",
    "read_compare_settings",
]
