"""The supervisor's loop on the real system: signals in, ticks, sleep until the next event."""

from __future__ import annotations

from traffic_duplicator.logs import EventLog
from traffic_duplicator.wrapper.host import OsHost
from traffic_duplicator.wrapper.supervisor import Supervisor, SupervisorPlan
from traffic_duplicator.wrapper.wakeup import Wakeup

# Time given to the engines' output pumps, all together, to copy their last lines.
OUTPUT_JOIN_TIMEOUT = 1.0


def run(plan: SupervisorPlan, log: EventLog) -> int:
    """Supervise until done; the wrapper's exit status (the app's, as a shell reports it)."""
    host = OsHost()
    supervisor = Supervisor(plan, log, host)
    wakeup = Wakeup(supervisor.on_signal)
    wakeup.install()
    try:
        supervisor.begin()
        while True:
            supervisor.tick()
            if supervisor.done:
                return supervisor.exit_status()
            wakeup.wait(supervisor.timeout())
    except BaseException:
        supervisor.kill_all()
        raise
    finally:
        wakeup.restore()
        host.join_output(OUTPUT_JOIN_TIMEOUT)
