"""Hosts without buildpacks: `pip install` of the repository into a fresh virtualenv gives
`start-traffic-duplicator`, and the command line of examples/Dockerfile (ENTRYPOINT + CMD,
run from its WORKDIR) serves on $PORT and mirrors with it.

Whether the wrapper drains and reaps as PID 1 of its own PID namespace is tested with the
wrapper's supervision; here the point is the packaging and the example's command line.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import (
    REPO_ROOT,
    RecordingServer,
    free_port_block,
    running,
    wait_for_port,
    wait_until,
)

# A cold pip build (setuptools fetched into an isolated build environment) on a busy machine.
INSTALL_TIMEOUT = 300
BOOT_TIMEOUT = 30.0


def dockerfile_command(dockerfile: Path) -> list[str]:
    """ENTRYPOINT + CMD of a Dockerfile, both required in exec (JSON) form, so that the first
    word is the container's PID 1 with no shell in between."""
    forms: dict[str, list[str]] = {}
    for line in dockerfile.read_text().splitlines():
        keyword, _, rest = line.partition(" ")
        if keyword in ("ENTRYPOINT", "CMD"):
            value = json.loads(rest)
            assert isinstance(value, list), f"{keyword} is not in exec form: {line}"
            forms[keyword] = [str(word) for word in value]
    return forms["ENTRYPOINT"] + forms["CMD"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the repository pip-installed (from a copy, so no build
    droppings land in the checkout). Returns its bin/ directory."""
    root = tmp_path_factory.mktemp("pip")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO_ROOT / name, source / name)
    shutil.copytree(
        REPO_ROOT / "traffic_duplicator",
        source / "traffic_duplicator",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)],
        check=True,
        timeout=INSTALL_TIMEOUT,
    )
    return venv / "bin"


def test_pip_install_gives_start_traffic_duplicator(installed: Path) -> None:
    launcher = installed / "start-traffic-duplicator"

    result = subprocess.run(
        [str(launcher)], capture_output=True, text=True, timeout=30, check=False
    )

    assert launcher.is_file()
    assert result.returncode == 2
    assert result.stderr.startswith("start-traffic-duplicator: error: no command given")


def test_the_dockerfile_command_line_serves_and_mirrors(installed: Path, tmp_path: Path) -> None:
    argv = dockerfile_command(REPO_ROOT / "examples" / "Dockerfile")
    assert argv == ["start-traffic-duplicator", "python3", "app.py"]
    # The image's WORKDIR: the app and its config/gor.options.
    workdir = tmp_path / "app"
    (workdir / "config").mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "examples" / "app.py", workdir / "app.py")
    port = free_port_block(3)
    with RecordingServer() as destination:
        (workdir / "config" / "gor.options").write_text(
            f"--output-http 'http://127.0.0.1:{destination.port}'\n"
        )
        # The image's PATH: the virtualenv's bin/ (pip's entry point) and a python3.
        env = {"PATH": f"{installed}:/usr/bin:/bin", "PORT": str(port), "LANG": "C.UTF-8"}
        log = tmp_path / "container.log"
        with (
            log.open("wb") as output,
            running(argv, env=env, cwd=workdir, stdout=output, stderr=subprocess.STDOUT) as proc,
        ):
            wait_for_port(port, timeout=BOOT_TIMEOUT)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/from-the-container")
            status = conn.getresponse().status
            conn.close()
            wait_until(lambda: destination.count() >= 1, timeout=15, message=log.read_text())
            assert proc.poll() is None, log.read_text()

    assert status == 200
    assert [r.target for r in destination.snapshot()] == [b"/from-the-container"]
