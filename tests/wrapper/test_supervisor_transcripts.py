"""The supervisor's state machine as transcripts: events in, actions and log lines out.

A fake process table and a clock advanced by hand (tests/wrapper/fake_host.py) stand in
for the system, so every timing rule is pinned exactly and nothing waits. Lines starting
with `->` are what the supervisor asked of the host; the others are what it logged.
The same machine runs real processes in test_supervision.py.
"""

from __future__ import annotations

import signal

from tests.wrapper.fake_host import Transcript

# The plan's pids, in start order.
REPLAYER, APP, PROXY = 100, 101, 102


def test_boot_starts_the_replayer_and_the_app_and_the_proxy_only_once_the_app_serves() -> None:
    t = Transcript()
    assert t.begin() == [
        "-> start replayer",
        "at=start process=replayer pid=100 port=5002 command=replayer",
        "-> start app",
        "at=start process=app pid=101 port=5001 command=app",
        "at=phase phase=booting waiting_for=127.0.0.1:5001",
    ]
    assert t.tick(after=9.9) == []  # $PORT stays closed while the app boots
    assert t.tick(after=0.1) == ["at=waiting process=app port=5001 waited=10s"]
    t.host.listen("replayer")
    assert t.tick() == ["at=ready process=replayer port=5002"]
    t.host.listen("app")
    assert t.tick(after=2) == [
        "at=ready process=app port=5001 after=12s",
        "-> start proxy",
        "at=start process=proxy pid=102 port=5000 command=proxy",
        "at=phase phase=serving",
    ]
    t.host.listen("proxy")
    assert t.tick() == ["at=ready process=proxy port=5000"]


def test_the_app_exiting_stops_the_engines_in_order_at_once_and_its_status_is_ours() -> None:
    t = Transcript().serving()
    t.host.exit("app", 3)
    # Not a signal: nobody else was told, so no grace; the proxy drains first.
    assert t.tick(after=1) == [
        "at=exit process=app pid=101 status=3 uptime=1s",
        "at=phase phase=stopping reason=app-exited timeout=10s",
        "-> SIGTERM proxy",
        "at=stop process=proxy pid=102 signal=SIGTERM",
    ]
    t.host.exit("proxy")
    assert t.tick() == [
        "at=exit process=proxy pid=102 status=0 uptime=1s",
        "-> SIGTERM replayer",
        "at=stop process=replayer pid=100 signal=SIGTERM",
    ]
    t.host.exit("replayer")
    assert t.tick() == [
        "at=exit process=replayer pid=100 status=0 uptime=1s",
        "at=phase phase=done status=3",
    ]
    assert t.supervisor.done and t.supervisor.exit_status() == 3


def test_the_app_killed_by_a_signal_gives_128_plus_n() -> None:
    t = Transcript().serving()
    t.host.exit("app", killed_by=signal.SIGKILL)
    assert t.tick()[0] == "at=exit process=app pid=101 status=137 signal=SIGKILL uptime=0s"
    t.host.exit("proxy")
    t.host.exit("replayer")
    t.tick()
    t.tick()
    assert t.supervisor.exit_status() == 137


def test_sigterm_to_the_wrapper_alone_stops_proxy_then_app_then_replayer() -> None:
    t = Transcript().serving()
    assert t.signal(signal.SIGTERM) == [
        "at=signal signal=SIGTERM",
        "at=phase phase=stopping reason=SIGTERM timeout=10s",
    ]
    # The proxy still listens: maybe the platform signalled it too and it has not closed
    # its port yet. It gets a moment before we send our own SIGTERM.
    assert t.tick(after=0.4) == []
    assert t.tick(after=0.1) == ["-> SIGTERM proxy", "at=stop process=proxy pid=102 signal=SIGTERM"]
    assert t.tick(after=1) == []  # draining; the app must stay up to answer
    t.host.exit("proxy")
    assert t.tick() == [
        "at=exit process=proxy pid=102 status=0 uptime=1.5s",
        "-> SIGTERM app",
        "at=stop process=app pid=101 signal=SIGTERM",
    ]
    t.host.exit("app")
    assert t.tick() == [
        "at=exit process=app pid=101 status=0 uptime=1.5s",
        "-> SIGTERM replayer",
        "at=stop process=replayer pid=100 signal=SIGTERM",
    ]
    t.host.exit("replayer")
    assert t.tick() == [
        "at=exit process=replayer pid=100 status=0 uptime=1.5s",
        "at=phase phase=done status=0",
    ]


def test_when_the_platform_signals_every_process_nobody_gets_a_second_sigterm() -> None:
    t = Transcript().serving()
    # Heroku: every process at once. The engines and the app close their ports.
    for name in ("proxy", "app", "replayer"):
        t.host.close(name)
    assert t.signal(signal.SIGTERM) == [
        "at=signal signal=SIGTERM",
        "at=phase phase=stopping reason=SIGTERM timeout=10s",
        "at=stop process=proxy pid=102 signal=none reason=already-stopping",
    ]
    t.host.exit("proxy")
    assert t.tick(after=1)[1:] == [
        "at=stop process=app pid=101 signal=none reason=already-stopping",
    ]
    t.host.exit("app")
    assert t.tick()[1:] == ["at=stop process=replayer pid=100 signal=none reason=already-stopping"]
    t.host.exit("replayer")
    assert t.tick()[1:] == ["at=phase phase=done status=0"]
    assert not [line for line in t.host.transcript if line.startswith("-> SIG")]


def test_each_stage_gets_what_is_left_and_the_replayer_always_gets_its_last_words() -> None:
    # TIMEOUT 10 s: the proxy's drain ends by 7 s, the app's stop by 8.5 s, the replayer's
    # flush by 9 s; SIGKILL at 10 s.
    t = Transcript().serving()
    t.signal(signal.SIGTERM)
    assert t.tick(after=0.5)[0] == "-> SIGTERM proxy"
    assert t.tick(after=6.4) == []  # a long request is still being relayed
    # The drain's time is up: the proxy is told to stop waiting, and the app's stage starts.
    assert t.tick(after=0.1) == [
        "-> SIGTERM proxy",
        "at=hurry process=proxy pid=102 signal=SIGTERM after=7s",
        "-> SIGTERM app",
        "at=stop process=app pid=101 signal=SIGTERM",
    ]
    t.host.exit("proxy")
    assert t.tick(after=1) == ["at=exit process=proxy pid=102 status=0 uptime=8s"]
    # The app takes its time; the flush starts beside it, never hurrying the app.
    assert t.tick(after=0.5) == [
        "-> SIGTERM replayer",
        "at=stop process=replayer pid=100 signal=SIGTERM",
    ]
    assert t.tick(after=0.5) == [
        "-> SIGTERM replayer",
        "at=hurry process=replayer pid=100 signal=SIGTERM after=9s",
    ]
    t.host.exit("replayer")  # it abandons what is queued and logs its final stats
    assert t.tick(after=0.5) == ["at=exit process=replayer pid=100 status=0 uptime=9.5s"]
    assert t.tick(after=0.4) == []
    # The deadline: only the app is left.
    assert t.tick(after=0.1) == [
        "-> SIGKILL app",
        "at=kill process=app pid=101 signal=SIGKILL after=10s",
    ]
    t.host.exit("app", killed_by=signal.SIGKILL)
    assert t.tick() == [
        "at=exit process=app pid=101 status=137 signal=SIGKILL uptime=10s",
        "at=phase phase=done status=137",
    ]


def test_a_stage_that_ends_early_leaves_its_time_to_the_next() -> None:
    t = Transcript().serving()
    t.host.exit("app", 0)
    t.tick()
    t.host.exit("proxy")
    assert t.tick(after=0.1)[-1] == "at=stop process=replayer pid=100 signal=SIGTERM"
    # The replayer flushes from 0.1 s until 9 s before anyone hurries it.
    assert t.tick(after=8.8) == []
    assert t.tick(after=0.1)[-1] == "at=hurry process=replayer pid=100 signal=SIGTERM after=9s"


def test_a_child_that_ignores_sigterm_is_killed_exactly_at_the_timeout() -> None:
    t = Transcript(timeout=2).serving()
    t.host.exit("proxy", 0)  # (it crashed: restarted at once)
    t.tick()
    t.host.listen("proxy")
    t.tick()
    t.signal(signal.SIGTERM)
    t.host.exit("proxy")  # the new proxy drains quickly
    t.tick(after=0.5)
    assert t.tick() == []
    # SIGTERM went to the app at 0.5 s; it ignores it. Nothing is killed before 2 s.
    t.host.exit("replayer")  # (gone early, so only the app is left)
    t.tick(after=1.49)
    assert t.tick(after=0.01) == [
        "-> SIGKILL app",
        "at=kill process=app pid=101 signal=SIGKILL after=2s",
    ]
    t.host.exit("app", killed_by=signal.SIGKILL)
    assert t.tick()[-1] == "at=phase phase=done status=137"


def test_a_child_not_reaped_after_sigkill_is_named_and_we_exit_anyway() -> None:
    t = Transcript(timeout=2).serving()
    t.signal(signal.SIGTERM)
    t.tick(after=2)
    assert t.tick(after=1.9)[-1:] != ["at=phase phase=done status=1"]
    assert t.tick(after=0.1)[-2:] == [
        'at=error problem="not reaped after SIGKILL" processes=proxy,app,replayer',
        "at=phase phase=done status=1",
    ]


def test_the_replayer_is_restarted_after_a_doubling_backoff() -> None:
    t = Transcript().serving()
    t.host.exit("replayer", killed_by=signal.SIGKILL)
    assert t.tick(after=5) == [
        "at=exit process=replayer pid=100 status=137 signal=SIGKILL uptime=5s restart_in=1s"
    ]
    assert t.supervisor.timeout() == 1.0  # the loop sleeps until the restart is due
    assert t.tick(after=0.99) == []
    assert t.tick(after=0.01) == [
        "-> start replayer",
        "at=start process=replayer pid=103 port=5002 command=replayer restart=1",
    ]
    t.host.exit("replayer", 1)
    assert t.tick(after=2)[-1].endswith("restart_in=2s")
    t.tick(after=2)
    t.host.exit("replayer", 1)
    assert t.tick(after=2)[-1].endswith("restart_in=4s")
    # A replayer that then stays up a minute is healthy: the next backoff starts afresh.
    t.tick(after=4)
    t.host.exit("replayer", 1)
    assert t.tick(after=60)[-1].endswith("restart_in=1s")


def test_the_proxy_is_restarted_at_once_and_given_up_on_after_five_crashes() -> None:
    t = Transcript().serving()
    for crash in range(1, 5):
        t.host.exit("proxy", killed_by=signal.SIGKILL)
        lines = t.tick(after=1)
        assert lines[0].endswith("restart_in=0s")
        assert lines[-1].endswith(f"command=proxy restart={crash}")
        t.host.listen("proxy")
    t.host.exit("proxy", killed_by=signal.SIGKILL)
    assert t.tick(after=1) == [
        "at=exit process=proxy pid=106 status=137 signal=SIGKILL uptime=1s action=give-up",
        'at=error process=proxy problem=crashing crashes=5 window=60s action="exit so the '
        'platform restarts the dyno"',
        "at=phase phase=stopping reason=proxy-crashing timeout=10s",
        "-> SIGTERM app",
        "at=stop process=app pid=101 signal=SIGTERM",
    ]
    t.host.exit("app")
    t.tick()
    t.host.exit("replayer")
    assert t.tick()[-1] == "at=phase phase=done status=1"


def test_a_shutdown_cancels_a_scheduled_restart() -> None:
    t = Transcript().serving()
    t.host.exit("replayer", 1)
    t.tick()
    t.signal(signal.SIGTERM)
    t.tick(after=0.5)
    t.host.exit("proxy")
    t.tick()
    t.host.exit("app")
    assert t.tick(after=5)[-1] == "at=phase phase=done status=0"
    assert t.host.transcript.count("-> start replayer") == 1


def test_an_app_on_the_wrong_port_serves_alone_and_the_replayer_is_stopped() -> None:
    t = Transcript()
    t.begin()
    t.host.accepting.add(5000)  # $PORT, taken by the app itself
    lines = t.tick()
    assert lines[0].startswith("at=error process=app problem=app-ignored-port port=5000 ")
    assert lines[1:] == [
        "at=phase phase=app-only reason=app-ignored-port",
        "-> SIGTERM replayer",
        "at=stop process=replayer pid=100 signal=SIGTERM",
    ]
    t.host.exit("replayer")
    assert t.tick() == ["at=exit process=replayer pid=100 status=0 uptime=0s"]
    assert t.phase == "app-only"


def test_an_app_that_cannot_be_started_exits_127_and_stops_the_replayer() -> None:
    t = Transcript()
    t.host.cannot_start["app"] = FileNotFoundError(2, "No such file or directory")
    assert t.begin()[2:] == [
        'at=error process=app problem="cannot start" command=app reason="No such file or '
        'directory"',
        "at=phase phase=stopping reason=app-not-started timeout=10s",
    ]
    assert t.tick() == ["-> SIGTERM replayer", "at=stop process=replayer pid=100 signal=SIGTERM"]
    t.host.exit("replayer")
    assert t.tick()[-1] == "at=phase phase=done status=127"


def test_a_group_left_behind_by_the_app_is_stopped_and_waited_for() -> None:
    t = Transcript().serving()
    t.host.exit("app", 3, leave_group=True)  # a shell's children live on
    assert t.tick()[:2] == ["-> SIGTERM app", "at=exit process=app pid=101 status=3 uptime=0s"]
    t.host.exit("proxy")
    t.tick()
    t.host.exit("replayer")
    assert t.tick(after=1) == ["at=exit process=replayer pid=100 status=0 uptime=1s"]
    t.host.group_gone("app")
    assert t.tick() == ["at=phase phase=done status=3"]


def test_a_group_left_behind_is_killed_at_the_deadline() -> None:
    t = Transcript().serving()
    t.host.exit("app", 0, leave_group=True)
    t.tick()
    t.host.exit("proxy")
    t.tick()
    t.host.exit("replayer")
    t.tick()
    assert t.tick(after=10) == [
        "-> SIGKILL app",
        "at=kill process=app pgid=101 signal=SIGKILL leftover=true",
    ]
    t.host.group_gone("app")
    assert t.tick() == ["at=phase phase=done status=0"]


def test_further_signals_do_not_restart_the_shutdown() -> None:
    t = Transcript().serving()
    t.signal(signal.SIGTERM)
    assert t.signal(signal.SIGINT) == ['at=signal signal=SIGINT action="already stopping"']
    assert t.tick(after=0.5)[0] == "-> SIGTERM proxy"


def test_orphans_re_parented_to_us_are_reaped_and_nothing_else() -> None:
    t = Transcript().serving()
    t.host.exited.append((4242, 0))  # a process the app orphaned; we are PID 1
    assert t.tick() == []
    assert t.phase == "serving"
