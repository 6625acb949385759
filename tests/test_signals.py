"""The engines' shutdown signals: what the first and the next signal mean, and bounded waits."""

from __future__ import annotations

import asyncio
import os
import signal

from traffic_duplicator.signals import Ending, ShutdownSignals


def test_the_first_signal_stops_and_every_later_one_hurries() -> None:
    async def main() -> ShutdownSignals:
        signals = ShutdownSignals()
        signals.record("SIGTERM")
        assert signals.stop.is_set() and not signals.hurry.is_set()
        signals.record("SIGINT")
        assert signals.hurry.is_set()
        return signals

    signals = asyncio.run(main())
    assert signals.received == ["SIGTERM", "SIGINT"]
    assert (signals.signal_name(0), signals.signal_name(1), signals.signal_name(2)) == (
        "SIGTERM",
        "SIGINT",
        None,
    )


def test_a_stop_the_engine_asked_for_is_not_hurried_by_the_next_signal() -> None:
    async def main() -> ShutdownSignals:
        signals = ShutdownSignals()
        signals.request_stop()  # --exit-after
        signals.record("SIGTERM")
        return signals

    signals = asyncio.run(main())
    assert signals.stop.is_set() and not signals.hurry.is_set()


def test_finish_says_how_the_wait_ended() -> None:
    async def main() -> list[Ending]:
        signals = ShutdownSignals()
        endings = [await signals.finish(asyncio.sleep(0), timeout=60)]
        never = asyncio.Event()
        endings.append(await signals.finish(never.wait(), timeout=0))
        signals.record("SIGTERM")
        signals.record("SIGTERM")
        endings.append(await signals.finish(never.wait(), timeout=60))
        return endings

    assert asyncio.run(main()) == [Ending.DONE, Ending.TIMED_OUT, Ending.HURRIED]


def test_installed_handlers_only_record_what_arrived() -> None:
    async def main() -> ShutdownSignals:
        signals = ShutdownSignals()
        signals.install(asyncio.get_running_loop())
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(signals.stop.wait(), timeout=30)
        finally:
            for sig in signals.signals:
                asyncio.get_running_loop().remove_signal_handler(sig)
        return signals

    assert asyncio.run(main()).received == ["SIGTERM"]
