"""TRAFFIC_DUPLICATOR_UVLOOP: a switch like every other; the engines never fail on it."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import engine_argv, free_port, python_env, running, wait_until
from traffic_duplicator.loops import UvloopSettingError, read_uvloop, uvloop_wanted

UVLOOP = "TRAFFIC_DUPLICATOR_UVLOOP"
HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


@pytest.mark.parametrize(
    ("value", "wanted"),
    [("", True), ("1", True), (" On ", True), ("yes", True),
     ("0", False), ("off", False), ("FALSE", False), ("no", False)],
)  # fmt: skip
def test_the_switch_words(value: str, wanted: bool) -> None:
    assert read_uvloop({UVLOOP: value}) is wanted
    assert uvloop_wanted({UVLOOP: value}) is wanted


def test_a_word_that_is_not_a_switch_is_refused_for_the_wrapper_but_asyncio_for_engines() -> None:
    with pytest.raises(UvloopSettingError, match=f"{UVLOOP}='maybe' is not understood"):
        read_uvloop({UVLOOP: "maybe"})
    assert uvloop_wanted({UVLOOP: "maybe"}) is False


def _proxy_loop(tmp_path: Path, value: str) -> tuple[str, str]:
    """Start the proxy with `value` as the switch; the loop its listening line names, and all
    it wrote."""
    log = tmp_path / "proxy.log"
    argv = engine_argv(
        "traffic_duplicator.proxy", "-l", f"127.0.0.1:{free_port()}", "-r", str(free_port())
    )
    with log.open("wb") as out, running(argv, env=python_env(**{UVLOOP: value}), stderr=out):
        wait_until(lambda: b"at=listening" in log.read_bytes(), timeout=20, message="listening")
    text = log.read_text()
    match = re.search(r" loop=(\w+)", text)
    assert match, text
    return match[1], text


@pytest.mark.parametrize("value", ["off", "No", "maybe"])
def test_the_proxy_runs_asyncio_for_off_words_and_for_junk_without_a_traceback(
    tmp_path: Path, value: str
) -> None:
    loop, text = _proxy_loop(tmp_path, value)
    assert loop == "asyncio", text
    assert "Traceback" not in text


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed (the test extra has it)")
def test_the_proxy_runs_uvloop_for_on_words(tmp_path: Path) -> None:
    assert _proxy_loop(tmp_path, "on")[0] == "uvloop"


@pytest.mark.parametrize(("value", "said"), [("off", "asyncio"), ("", "uvloop"), ("yes", "uvloop")])
def test_the_build_asks_the_same_reader(value: str, said: str) -> None:
    done = subprocess.run(
        engine_argv("traffic_duplicator.loops", "--build-choice"),
        env=python_env(**{UVLOOP: value}),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{said}\n", "")


def test_the_build_gets_one_line_and_status_2_for_junk() -> None:
    done = subprocess.run(
        engine_argv("traffic_duplicator.loops", "--build-choice"),
        env=python_env(**{UVLOOP: "maybe"}),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"{UVLOOP}='maybe' is not understood; use false, 0, no or off")
    assert done.stderr.count("\n") == 1
