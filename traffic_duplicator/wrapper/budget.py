"""How one shutdown deadline is shared by stages that run one after another.

Shutdown is three stages in order (see `stopping.py`): the proxy drains, the app stops,
the replayer flushes. They share one deadline, `TRAFFIC_DUPLICATOR_SHUTDOWN_TIMEOUT`
(25 s; Heroku SIGKILLs 30 s after its SIGTERM). A stage takes what is left when it
starts, less what the stages after it are kept: so a drain that runs long shortens the
flush, but never to nothing, and the replayer always has time for its last `at=stats`.

Each stage has an "end by" time. When it comes, the wrapper sends an engine still at work
a second SIGTERM, which the engines read as "stop waiting" (`traffic_duplicator.signals`),
and the next stage starts even if that one is still finishing. The app is never hurried
(a second SIGTERM means nothing standard to a web server): its end-by only starts the
flush beside it. At the deadline itself whatever is left is SIGKILLed.

The engines are also told their budget on their command line (`--drain-timeout`,
`--flush-timeout`): the most their stage can get, which is what they use when the platform
signals every process at once and all stages start together.
"""

from __future__ import annotations

from dataclasses import dataclass

# The least kept, as shares of the timeout, for the stages after the drain: the app's own
# stop, and the replayer's flush.
APP_SHARE = 0.15
FLUSH_SHARE = 0.15
# Kept at the very end so that a hurried replayer can write its last lines before SIGKILL.
LAST_WORDS_SHARE = 0.1
LAST_WORDS_CAP = 1.0

# The stages, in the order they run: each is named for the child that does the work.
STAGES = ("proxy", "app", "replayer")


@dataclass(frozen=True)
class ShutdownBudget:
    """Stage deadlines, in seconds after the shutdown began, for a `timeout` in seconds."""

    timeout: float

    @property
    def last_words(self) -> float:
        return min(LAST_WORDS_CAP, self.timeout * LAST_WORDS_SHARE)

    def end_by(self, stage: str) -> float:
        """When `stage` must be over, in seconds after the shutdown began (KeyError if unknown)."""
        kept_after = {
            "proxy": (APP_SHARE + FLUSH_SHARE) * self.timeout,
            "app": FLUSH_SHARE * self.timeout,
            "replayer": self.last_words,
        }[stage]
        return self.timeout - kept_after

    @property
    def drain_timeout(self) -> float:
        """The proxy's --drain-timeout: its stage's whole share, as when it starts at once."""
        return self.end_by("proxy")

    @property
    def flush_timeout(self) -> float:
        """The built-in replayer's --flush-timeout: up to its end-by, as when it starts at once."""
        return self.end_by("replayer")
