"""The port plan and the argv rewrite, as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traffic_duplicator.addr import listen_socket
from traffic_duplicator.errors import AddressError, PortInUseError
from traffic_duplicator.wrapper.ports import (
    PortPlan,
    PortPlanError,
    check_ports_free,
    plan_ports,
    rewrite_command,
)


def test_plan_uses_the_next_two_ports() -> None:
    assert plan_ports({"PORT": "5000"}) == PortPlan(5000, 5001, 5002)


def test_plan_overrides_move_the_app_and_the_replayer() -> None:
    env = {
        "PORT": "5000",
        "TRAFFIC_DUPLICATOR_APP_PORT": "6000",
        "TRAFFIC_DUPLICATOR_REPLAYER_PORT": "7000",
    }
    assert plan_ports(env) == PortPlan(5000, 6000, 7000)


@pytest.mark.parametrize("value", [None, "", "  "])
def test_plan_without_port_names_the_variable(value: str | None) -> None:
    env = {} if value is None else {"PORT": value}
    with pytest.raises(PortPlanError, match="PORT is not set"):
        plan_ports(env)


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1", "50.5"])
def test_plan_with_a_bad_port_says_what_a_port_is(value: str) -> None:
    with pytest.raises(AddressError, match=r"PORT '.*' is not a TCP port"):
        plan_ports({"PORT": value})


def test_plan_with_a_bad_override_names_the_override() -> None:
    with pytest.raises(AddressError, match="TRAFFIC_DUPLICATOR_APP_PORT"):
        plan_ports({"PORT": "5000", "TRAFFIC_DUPLICATOR_APP_PORT": "x"})


def test_plan_at_the_top_of_the_range_names_the_override() -> None:
    with pytest.raises(PortPlanError, match="TRAFFIC_DUPLICATOR_APP_PORT"):
        plan_ports({"PORT": "65535"})
    with pytest.raises(PortPlanError, match="TRAFFIC_DUPLICATOR_REPLAYER_PORT"):
        plan_ports({"PORT": "65534"})


def test_plan_refuses_colliding_ports() -> None:
    with pytest.raises(PortPlanError, match="ports must differ"):
        plan_ports({"PORT": "5000", "TRAFFIC_DUPLICATOR_REPLAYER_PORT": "5001"})


def test_taken_app_port_names_the_port_and_the_variable() -> None:
    taken = listen_socket(0, "127.0.0.1")
    try:
        port = taken.getsockname()[1]
        plan = PortPlan(public=port - 1, app=port, replayer=port + 1)
        with pytest.raises(PortInUseError) as caught:
            check_ports_free(plan, lambda p, host: p != port)
        assert f"port {port}" in str(caught.value)
        assert "TRAFFIC_DUPLICATOR_APP_PORT" in str(caught.value)
        # The real probe agrees that the port is taken.
        with pytest.raises(PortInUseError):
            check_ports_free(plan)
    finally:
        taken.close()


def test_taken_replayer_port_names_its_variable() -> None:
    with pytest.raises(PortInUseError, match=r"port 5002 .*TRAFFIC_DUPLICATOR_REPLAYER_PORT"):
        check_ports_free(PortPlan(5000, 5001, 5002), lambda p, host: p != 5002)


def test_free_ports_pass() -> None:
    check_ports_free(PortPlan(5000, 5001, 5002), lambda p, host: True)


REWRITTEN = [
    ("5000", "5001"),
    ("-p5000", "-p5001"),
    ("-P5000", "-P5001"),
    ("--port=5000", "--port=5001"),
    ("--http-port=5000", "--http-port=5001"),
    ("--bind=0.0.0.0:5000", "--bind=0.0.0.0:5001"),
    ("-b0.0.0.0:5000", "-b0.0.0.0:5001"),
    ("0.0.0.0:5000", "0.0.0.0:5001"),
    ("127.0.0.1:5000", "127.0.0.1:5001"),
    ("localhost:5000", "localhost:5001"),
    (":5000", ":5001"),
    ("*:5000", "*:5001"),
    ("[::]:5000", "[::]:5001"),
    ("[::1]:5000", "[::1]:5001"),
    ("tcp://0.0.0.0:5000", "tcp://0.0.0.0:5001"),
    ("tcp://[::]:5000", "tcp://[::]:5001"),
    ("ssl://0.0.0.0:5000?key=k.pem", "ssl://0.0.0.0:5000?key=k.pem".replace("5000", "5001")),
    ("http://0.0.0.0:5000", "http://0.0.0.0:5001"),
    ("https://example.com:5000/path?q=1", "https://example.com:5001/path?q=1"),
    ("$PORT", "5001"),
    ("${PORT}", "5001"),
    ("${PORT:-3000}", "5001"),
    ("${PORT-3000}", "5001"),
    ("-p$PORT", "-p5001"),
    ("--port=${PORT}", "--port=5001"),
    ("0.0.0.0:$PORT", "0.0.0.0:5001"),
    ("tcp://0.0.0.0:${PORT:-3000}", "tcp://0.0.0.0:5001"),
]


@pytest.mark.parametrize(("word", "expected"), REWRITTEN)
def test_every_form_of_the_port_is_rewritten(word: str, expected: str) -> None:
    result = rewrite_command(["server", word], 5000, 5001)
    assert result.argv == ("server", expected)
    assert [(r.position, r.old, r.new) for r in result.rewrites] == [(1, word, expected)]


@pytest.mark.parametrize(
    "argv",
    [
        ["rails", "s", "-p", "5000"],
        ["puma", "--port", "5000"],
        ["python", "-m", "http.server", "5000"],
        ["python", "-m", "http.server", "-b", "127.0.0.1", "5000"],
        ["gunicorn", "--bind", "0.0.0.0:5000", "app:app"],
    ],
)
def test_a_separate_port_word_is_rewritten(argv: list[str]) -> None:
    result = rewrite_command(argv, 5000, 5001)
    assert result.argv == tuple(w.replace("5000", "5001") for w in argv)
    assert len(result.rewrites) == 1


NOT_REWRITTEN = [
    "15000",
    "50001",
    "50000",
    "5000.5",
    "5000ms",
    "v5000",
    "file5000.txt",
    "/srv/5000/app",
    "0.0.0.0:15000",
    "0.0.0.0:50001",
    "5000:5000",
    "--workers=5000",
    "--max-requests=5000",
    "-t5000",
    "-p15000",
    "--port=50001",
    "redis://localhost:5000",
    "http://0.0.0.0:50001",
    "$PORTS",
    "${PORTS}",
    "${PORT:+set}",
    "$APP_PORT",
    "PORT",
    "-w",
    "",
]


@pytest.mark.parametrize("word", NOT_REWRITTEN)
def test_words_that_do_not_name_the_port_are_left_alone(word: str) -> None:
    result = rewrite_command(["server", word], 5000, 5001)
    assert result.argv == ("server", word)
    assert result.rewrites == ()


@pytest.mark.parametrize(
    ("argv", "owner"),
    [
        (["gunicorn", "--max-requests", "5000", "app:app"], "--max-requests"),
        (["server", "-t", "5000"], "-t"),
        (["server", "--timeout=5000"], "--timeout"),
        (["server", "-w5000"], "-w"),
    ],
)
def test_a_number_that_is_another_options_value_is_kept_and_reported(
    argv: list[str], owner: str
) -> None:
    result = rewrite_command(argv, 5000, 5001)
    assert result.argv == tuple(argv)
    assert [k.reason for k in result.kept] == [f"value of {owner}"]


def test_the_program_itself_is_never_rewritten() -> None:
    assert rewrite_command(["5000", "$PORT"], 5000, 5001).argv == ("5000", "5001")


def test_several_words_are_each_rewritten_and_reported() -> None:
    argv = ["bundle", "exec", "rails", "s", "-p", "5000", "-b", "tcp://0.0.0.0:5000"]
    result = rewrite_command(argv, 5000, 5001)
    assert result.argv[-3:] == ("5001", "-b", "tcp://0.0.0.0:5001")
    assert [r.position for r in result.rewrites] == [5, 7]


def test_same_port_expands_only_unexpanded_references() -> None:
    result = rewrite_command(["rails", "s", "-p", "${PORT:-3000}", "5000"], 5000, 5000)
    assert result.argv == ("rails", "s", "-p", "5000", "5000")
    assert [r.position for r in result.rewrites] == [3]


ports = st.integers(min_value=1, max_value=65533)
forms = st.sampled_from(
    ["{}", "-p{}", "--port={}", "0.0.0.0:{}", "[::]:{}", "tcp://0.0.0.0:{}", "http://h:{}/x"]
)


@settings(deadline=None)  # a loaded CI machine must not turn slowness into failure
@given(port=ports, other=st.integers(min_value=0, max_value=999_999), form=forms)
def test_property_only_the_exact_port_number_is_rewritten(port: int, other: int, form: str) -> None:
    word = form.format(other)
    result = rewrite_command(["server", word], port, port + 1)
    if other == port:
        assert result.argv[1] == form.format(port + 1)
    else:
        assert result.argv[1] == word


@settings(deadline=None)
@given(port=ports, junk=st.text(min_size=0, max_size=20))
def test_property_rewriting_changes_only_the_port_digits(port: int, junk: str) -> None:
    word = f"{junk}{port}"
    result = rewrite_command(["server", word], port, port + 1)
    new = result.argv[1]
    assert new in (word, f"{junk}{port + 1}") or "$" in junk
