"""Shutdown with real processes: the stages share one deadline, and the wrapper alone is
enough to stop everything (a terminal, or PID 1 in a container, signals only the wrapper)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from tests.support import RecordingServer, wait_until
from tests.wrapper.harness import (
    assert_nothing_left,
    engine_lines,
    established,
    example_app,
    get,
    running_wrapper,
    write_options,
)

# Stages end by 7 s (proxy), 8.5 s (app) and 9 s (replayer); SIGKILL at 10 s.
TIMEOUT = 10
# Most of the proxy's 7 s drain.
PRODUCTION_SECONDS = 5
# Each mirrored request takes this long at the destination: the queue cannot be flushed.
DESTINATION_DELAY = 5.0
QUEUE_LEN = 5


def test_a_long_drain_then_a_slow_flush_end_before_the_deadline_with_final_stats(
    tmp_path: Path,
) -> None:
    with RecordingServer(delay=DESTINATION_DELAY) as slow:
        write_options(
            tmp_path,
            f"--output-http http://127.0.0.1:{slow.port}",
            "--output-http-workers 1",
            f"--output-http-queue-len {QUEUE_LEN}",
            "--output-http-timeout 60s",
        )
        with running_wrapper(
            tmp_path, example_app(), TRAFFIC_DUPLICATOR_SHUTDOWN_TIMEOUT=str(TIMEOUT)
        ) as wrapper:
            wrapper.wait_serving()
            # Fill the replayer's queue behind a destination that answers slowly.
            for i in range(3 * QUEUE_LEN):
                assert get(wrapper.port, f"/fill/{i}") == 200
            wait_until(lambda: slow.count() >= 1, 15, message="nothing reached the destination")
            wait_until(lambda: established(wrapper.app_port) == 0, 15, message="idle upstreams")
            # A production request that is still running for most of the drain.
            results: list[int | None] = []
            long_request = threading.Thread(
                target=lambda: results.append(
                    get(wrapper.port, f"/sleep/{PRODUCTION_SECONDS}", timeout=30)
                )
            )
            long_request.start()
            wait_until(lambda: established(wrapper.app_port) == 1, 15, message="not in the app")
            # The wrapper alone is signalled.
            os.kill(wrapper.proc.pid, signal.SIGTERM)
            status = wrapper.wait_exit(TIMEOUT + 10)
            long_request.join(30)
            assert results == [200], wrapper.stderr()
            assert status == 0, wrapper.stderr()
            # Before the deadline the wrapper set: nothing had to be SIGKILLed.
            assert not wrapper.events(at="kill"), wrapper.stderr()
            stops = [e["process"] for e in wrapper.events(at="stop")]
            assert stops == ["proxy", "app", "replayer"], wrapper.stderr()
            assert all(e["signal"] == "SIGTERM" for e in wrapper.events(at="stop"))
            # The flush could not finish: at its end-by the replayer was told to stop waiting,
            # and it still wrote its final counters.
            order = [(e["at"], e.get("process")) for e in wrapper.events()]
            assert order.index(("stop", "replayer")) < order.index(("hurry", "replayer"))
            assert engine_lines(wrapper, "replayer", at="signal", action="abandon")
            output = f"http://127.0.0.1:{slow.port}"
            (final,) = engine_lines(wrapper, "replayer", at="stats", final="true", output=output)
            assert int(final["dropped"]) > 0, final  # the queue was full
            assert_nothing_left(wrapper)
