"""The replayer's one entry point to comparison: feed it responses, log what it returns.

    scope = Scope(outputs=tuple(o.name for o in outputs), source=os.environ["DYNO"])
    comparer = Comparer(settings, scope)
    comparer.observe_production(message_id, decode_response(type_2_message))
    comparer.observe_shadow(index, message_id, response, method=m, target=t)
    comparer.observe_error(index, message_id, method=m, target=t)
    for line in comparer.tick(): log(line)      # call often, e.g. every second
    for line in comparer.close(): log(line)     # at exit

Nothing here blocks or does I/O; every call is bounded work (one comparison at most, over
bodies of at most the capture limit). `tick` returns sampled `at=difference` lines as they
accumulate and, once per interval, the `at=compare` lines. A comparison that fails in an
unexpected way is counted as an error of that output rather than raised: comparing must
never stop the replayer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from traffic_duplicator.compare import lines
from traffic_duplicator.compare.aggregate import Aggregator, Output
from traffic_duplicator.compare.diff import Outcome, compare
from traffic_duplicator.compare.model import CapturedResponse
from traffic_duplicator.compare.pairing import DEFAULT_TIMEOUT, PendingPairs, Shadow
from traffic_duplicator.compare.redact import mask_url
from traffic_duplicator.compare.routes import Router
from traffic_duplicator.compare.samples import Sampler
from traffic_duplicator.compare.settings import CompareSettings, resolve_baseline


@dataclass(frozen=True)
class Scope:
    """The replayer's facts a Comparer needs.

    `outputs` are the outputs' normalised URLs in options-file order (the baseline is
    resolved against them); `source` names the dyno; `answers` is how many outputs receive
    each request (None: all of them; 1 with `--split-output`); `timeout` is how long an
    answer may wait for its pair (the output timeout).
    """

    outputs: tuple[str, ...]
    source: str
    answers: int | None = None
    timeout: float = DEFAULT_TIMEOUT


class Comparer:
    """Pairs, compares and aggregates for every output of one replayer process.

    `clock` is monotonic seconds, `wall` Unix seconds (for the lines' `end=`).
    """

    def __init__(
        self,
        settings: CompareSettings,
        scope: Scope,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        outputs = scope.outputs
        baseline = resolve_baseline(settings.baseline, outputs)
        described = [
            Output(mask_url(url), lines.BASELINE if i == baseline else lines.CANDIDATE)
            for i, url in enumerate(outputs)
        ]
        self._settings = settings
        self._clock = clock
        self._wall = wall
        self._router = Router(settings.routes)
        answers = scope.answers if scope.answers is not None else len(outputs)
        self._pairs = PendingPairs(answers, scope.timeout)
        self._aggregator = Aggregator(described, scope.source)
        self._sampler = Sampler(described, scope.source)
        self._next_flush = clock() + settings.interval
        self.internal_errors = 0

    def observe_production(self, message_id: bytes, response: CapturedResponse) -> None:
        """Production's response to request `message_id` (from a type `2` message)."""
        for pair in self._pairs.production(message_id, response, self._clock()):
            self._compare(pair.production, pair.shadow)

    def observe_shadow(
        self,
        output: int,
        message_id: bytes,
        response: CapturedResponse,
        *,
        method: bytes,
        target: bytes,
    ) -> None:
        """Output `output` answered request `message_id` (`METHOD target` as it arrived, before
        any rewrite) with `response`, whose `latency` is the time from sending the request to
        the end of the response (GoReplay's type `3` latency)."""
        route = self._route(method, target)
        waiting = Shadow(output, route, response, response.latency or 0.0)
        pair = self._pairs.shadow(message_id, waiting, self._clock())
        if pair is not None:
            self._compare(pair.production, pair.shadow)

    def observe_error(
        self, output: int, message_id: bytes, *, method: bytes, target: bytes
    ) -> None:
        """Output `output` gave no usable answer to `message_id` (timeout, refused, garbage)."""
        self._aggregator.route_stats(output, self._route(method, target)).errors += 1
        self._pairs.answered(message_id, self._clock())

    def tick(self) -> list[str]:
        """Lines ready to log: difference samples, and the interval's lines when it is over."""
        now = self._clock()
        self._pairs.expire(now)
        self._count_dropped()
        due = now >= self._next_flush
        if due:
            self._next_flush = now + self._settings.interval
            self._sampler.reset()  # queues the count of samples held back
        out = self._sampler.take()
        if due:
            out += self._aggregator.flush(self._wall())
        return out

    def close(self) -> list[str]:
        """The last lines, `final=true`; answers still waiting for their pair count as dropped."""
        self._pairs.expire(float("inf"))
        self._count_dropped()
        self._sampler.reset()
        return self._sampler.take() + self._aggregator.flush(self._wall(), final=True)

    @property
    def pending(self) -> int:
        """Answers and production responses waiting for their pair."""
        return len(self._pairs)

    def _route(self, method: bytes, target: bytes) -> str:
        return self._router.route(method.decode("latin-1"), target.decode("latin-1"))

    def _count_dropped(self) -> None:
        for shadow in self._pairs.take_dropped():
            self._aggregator.route_stats(shadow.output, shadow.route).dropped += 1

    def _compare(self, production: CapturedResponse, shadow: Shadow) -> None:
        try:
            outcome = compare(production, shadow.response, self._settings.rules)
        except Exception:  # a comparison bug must not take the replayer down
            self.internal_errors += 1
            self._aggregator.route_stats(shadow.output, shadow.route).errors += 1
            return
        self._record(production, shadow, outcome)

    def _record(self, production: CapturedResponse, shadow: Shadow, outcome: Outcome) -> None:
        route = self._aggregator.admit(shadow.output, shadow.route)
        self._aggregator.compared(shadow.output, route, outcome, production.latency, shadow.latency)
        for difference in outcome.differences:
            self._sampler.offer(shadow.output, route, difference)
