"""Example differences as `at=difference` lines, a few per route and field per interval.

Each line names the output, the route, the counted field and the concrete place, and
shows production's and the shadow's values, cut to 80 characters. Values of secret-named
headers and JSON keys, and values that look like credentials, are printed as `[masked]`
(redact.py). At most `per_field` lines per output, route and field, and `per_output` per
output, are written each interval; the next line for the same key says how many were held
back (`suppressed=`).
"""

from __future__ import annotations

from traffic_duplicator.compare import lines
from traffic_duplicator.compare.aggregate import Output
from traffic_duplicator.compare.diff import Difference
from traffic_duplicator.compare.jsondiff import MISSING
from traffic_duplicator.compare.redact import render_value
from traffic_duplicator.logs import LogValue, logfmt

DEFAULT_PER_FIELD = 3
DEFAULT_PER_OUTPUT = 30


class Sampler:
    def __init__(
        self,
        outputs: list[Output],
        source: str,
        per_field: int = DEFAULT_PER_FIELD,
        per_output: int = DEFAULT_PER_OUTPUT,
    ) -> None:
        self._outputs = outputs
        self._source = source
        self._per_field = per_field
        self._per_output = per_output
        self._written: dict[tuple[int, str, str], int] = {}
        self._per_output_written = [0] * len(outputs)
        self._suppressed = [0] * len(outputs)
        self._ready: list[str] = []

    def offer(self, output: int, route: str, difference: Difference) -> bool:
        """Queue a line for this difference unless its quota is used; True if queued."""
        key = (output, route, difference.field)
        written = self._written.get(key, 0)
        if written >= self._per_field or self._per_output_written[output] >= self._per_output:
            self._suppressed[output] += 1
            return False
        self._written[key] = written + 1
        self._per_output_written[output] += 1
        self._queue(
            output,
            route=route,
            field=difference.field,
            where=difference.where,
            production=_show(difference.production, difference.secret),
            shadow=_show(difference.shadow, difference.secret),
        )
        return True

    def _queue(self, output: int, **fields: LogValue) -> None:
        target = self._outputs[output]
        self._ready.append(
            logfmt(
                at=lines.DIFFERENCE,
                source=self._source,
                destination=target.destination,
                role=target.role,
                **fields,
            )
        )

    def take(self) -> list[str]:
        ready, self._ready = self._ready, []
        return ready

    def reset(self) -> None:
        """A new interval: quotas start again (the dicts stay bounded by one interval's quota)."""
        self._written.clear()
        self._per_output_written = [0] * len(self._outputs)
        for output, count in enumerate(self._suppressed):
            if count:
                self._queue(output, suppressed=count)
        self._suppressed = [0] * len(self._outputs)


def _show(value: object, secret: bool) -> str:
    return "(absent)" if value is MISSING else render_value(value, secret)
