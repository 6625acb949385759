"""The hooks, their libraries and the slug's launcher are ShellCheck-clean."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support import REPO_ROOT

SHELL_FILES = [
    "bin/detect",
    "bin/compile",
    "bin/release",
    "bin/build",
    "bin/start-traffic-duplicator",
    *sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "lib").glob("*.sh")),
]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shell_sources_pass_shellcheck() -> None:
    proc = subprocess.run(
        ["shellcheck", "--shell=bash", *SHELL_FILES],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hooks_are_executable() -> None:
    for name in ("detect", "compile", "release", "build", "start-traffic-duplicator"):
        assert (REPO_ROOT / "bin" / name).stat().st_mode & 0o111, name
