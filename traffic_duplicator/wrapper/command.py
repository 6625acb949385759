"""The app's command itself: whether it can run, and exec'ing it when duplication is off."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from traffic_duplicator.errors import UserError

# The shell's statuses for a command that cannot be run.
NOT_FOUND_STATUS = 127
NOT_EXECUTABLE_STATUS = 126


class CommandError(UserError):
    """The app's program cannot be found or run; the status is the one a shell would give."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status


def check_program(program: str, env: Mapping[str, str]) -> None:
    """Fail now, as a shell would (127, 126), rather than after starting the replayer."""
    path = env.get("PATH", os.defpath)
    if shutil.which(program, path=path) is not None:
        return
    if "/" in program:
        candidates = [Path(program)]
    else:
        candidates = [Path(d) / program for d in path.split(os.pathsep) if d]
    if any(c.is_file() for c in candidates):
        raise CommandError(
            f"{program}: permission denied; make it executable (chmod +x)", NOT_EXECUTABLE_STATUS
        )
    where = "" if "/" in program else " on PATH"
    raise CommandError(f"{program}: command not found{where}", NOT_FOUND_STATUS)


def exec_app(command: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """Replace this process with the app; returns only by raising CommandError."""
    program = command[0]
    try:
        os.execvpe(program, list(command), dict(env))
    except FileNotFoundError:
        raise CommandError(f"{program}: command not found", NOT_FOUND_STATUS) from None
    except PermissionError:
        raise CommandError(f"{program}: permission denied", NOT_EXECUTABLE_STATUS) from None
    except OSError as exc:
        raise CommandError(f"{program}: {exc.strerror}", NOT_EXECUTABLE_STATUS) from None
