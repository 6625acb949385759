"""Which gor serves config/gor.options: the app's, the buildpack's vendor/gor, or none."""

from __future__ import annotations

from pathlib import Path

from tests.buildpack.conftest import App, Hooks, RuntimeServer, write_fake_gor

# A flag only a real gor implements: accepted with gor in the slug, refused without.
GOR_ONLY_LINE = "--output-http-track-response\n"


def _node_app(hooks: Hooks, server: RuntimeServer, name: str = "app"):  # type: ignore[no-untyped-def]
    app = hooks.app("node", name=name)
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", server.url("python.tar.gz"))
    options = app.build_dir / "config" / "gor.options"
    options.write_text(options.read_text() + GOR_ONLY_LINE)
    return app


def test_buildpack_gor_is_copied_to_bin_gor_and_reported(
    hooks: Hooks, buildpack_with_gor: Path, runtime_server: RuntimeServer
) -> None:
    app = _node_app(hooks, runtime_server)

    result = hooks.compile(app, "heroku-24", buildpack=buildpack_with_gor)

    assert result.returncode == 0, result.output
    slug_gor = app.build_dir / "bin" / "gor"
    assert slug_gor.read_bytes() == (buildpack_with_gor / "vendor" / "gor" / "gor").read_bytes()
    assert slug_gor.stat().st_mode & 0o777 == 0o755
    assert "       Copied the buildpack's vendor/gor/gor to bin/gor\n" in result.stdout
    # The decision, as the dyno will log it: its version, and how it is fed.
    assert (
        '       at=engine process=replayer engine="gor --input-http" reason="the app\'s bin/gor '
        '/app/bin/gor (gor 0.14.1) lists --input-http (v0.14 or older)"\n'
    ) in result.stdout
    assert "       at=engine process=hop framing=http " in result.stdout
    assert "       Replayer: gor 0.14.1 (/app/bin/gor), fed plain HTTP on --input-http\n" in (
        result.stdout
    )
    # The validator was told a real gor is there, so the gor-only flag passed.
    assert "needs-real-gor --output-http-track-response" in result.stdout


def test_without_gor_the_built_in_replayer_is_reported(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("node")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url("python.tar.gz"))

    result = hooks.compile(app, "heroku-24")

    assert result.returncode == 0, result.output
    assert not (app.build_dir / "bin" / "gor").exists()
    assert "       Replayer: the built-in replayer (python -m traffic_duplicator.replay)\n" in (
        result.stdout
    )


def test_the_apps_own_gor_is_kept(
    hooks: Hooks, buildpack_with_gor: Path, runtime_server: RuntimeServer
) -> None:
    app = _node_app(hooks, runtime_server)
    write_fake_gor(app.build_dir / "bin" / "gor", "1.3.3")
    own = (app.build_dir / "bin" / "gor").read_bytes()

    result = hooks.compile(app, "heroku-24", buildpack=buildpack_with_gor)

    assert result.returncode == 0, result.output
    assert (app.build_dir / "bin" / "gor").read_bytes() == own
    assert "Keeping the app's bin/gor; the buildpack's vendor/gor/gor is not used" in (
        result.stdout
    )
    assert "/app/bin/gor (gor 1.3.3) has no --input-http (v0.15 or newer)" in result.stdout
    assert "       at=engine process=hop framing=gor " in result.stdout


def test_rebuild_in_place_still_knows_the_copied_gor_is_the_buildpacks(
    hooks: Hooks, buildpack_with_gor: Path, runtime_server: RuntimeServer
) -> None:
    app = _node_app(hooks, runtime_server)
    assert hooks.compile(app, "heroku-24", buildpack=buildpack_with_gor).returncode == 0

    again = hooks.compile(app, "heroku-24", buildpack=buildpack_with_gor)

    assert again.returncode == 0, again.output
    assert "Copied the buildpack's vendor/gor/gor to bin/gor" in again.stdout
    assert "Keeping the app's bin/gor" not in again.stdout


def test_rebuild_in_place_without_vendor_gor_removes_the_copy(
    hooks: Hooks, buildpack_with_gor: Path, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("node")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url("python.tar.gz"))
    assert hooks.compile(app, "heroku-24", buildpack=buildpack_with_gor).returncode == 0

    again = hooks.compile(app, "heroku-24")

    assert again.returncode == 0, again.output
    assert not (app.build_dir / "bin" / "gor").exists()
    assert "Replayer: the built-in replayer" in again.stdout


def _unrunnable_gor(app: App) -> None:
    bad = app.build_dir / "bin" / "gor"
    bad.parent.mkdir()
    # Not a program this machine can run, e.g. a macOS build committed by mistake.
    bad.write_bytes(b"\xcf\xfa\xed\xfe" + b"\x00" * 64)
    bad.chmod(0o755)


def test_a_gor_that_cannot_run_is_named_and_the_builtin_replayer_serves(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("node")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url("python.tar.gz"))
    _unrunnable_gor(app)

    result = hooks.compile(app, "heroku-24")

    # The dyno would start with the built-in replayer, so the build says so and passes.
    assert result.returncode == 0, result.output
    assert (
        "at=engine process=replayer engine=builtin reason=\"the app's bin/gor /app/bin/gor did "
        'not answer --help (Exec format error)"'
    ) in result.stdout
    warning = " !     Warning: the app's bin/gor (/app/bin/gor) cannot run here: Exec format error."
    assert warning in result.stderr
    assert "git rm bin/gor" in result.stderr


def test_a_gor_that_cannot_run_fails_the_build_where_the_dyno_would_not_start(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = _node_app(hooks, runtime_server)
    _unrunnable_gor(app)

    result = hooks.compile(app, "heroku-24")

    # Options that need a real gor, and the only gor does not run: the dyno would refuse.
    assert result.returncode == 1
    assert " !     Warning: the app's bin/gor (/app/bin/gor) cannot run here" in result.stderr
    assert "--output-http-track-response needs a real gor binary" in result.stderr

    app.set_config("TRAFFIC_DUPLICATOR_REPLAYER", "gor")
    result = hooks.compile(app, "heroku-24")
    assert result.returncode == 1
    assert (
        "\n !     Error: the dyno would refuse to start: TRAFFIC_DUPLICATOR_REPLAYER=gor but the "
        "app's bin/gor /app/bin/gor did not answer --help (Exec format error); put gor there,"
    ) in result.stderr


def test_replayer_builtin_config_var_refuses_gor_only_flags_even_with_gor(
    hooks: Hooks, buildpack_with_gor: Path, runtime_server: RuntimeServer
) -> None:
    app = _node_app(hooks, runtime_server)
    app.set_config("TRAFFIC_DUPLICATOR_REPLAYER", "builtin\n")

    result = hooks.compile(app, "heroku-24", buildpack=buildpack_with_gor)

    # The wrapper would not use gor, so the file would fail at boot: fail the push instead.
    assert result.returncode == 1
    assert (
        'at=engine process=replayer engine=builtin reason="TRAFFIC_DUPLICATOR_REPLAYER=builtin"'
    ) in result.stdout
    assert "--output-http-track-response" in result.stderr


def test_gor_config_var_allows_gor_only_flags(hooks: Hooks, runtime_server: RuntimeServer) -> None:
    app = _node_app(hooks, runtime_server)
    write_fake_gor(app.build_dir / "vendor" / "goreplay" / "gor", "1.3.3")
    app.set_config("TRAFFIC_DUPLICATOR_GOR", "/app/vendor/goreplay/gor")

    result = hooks.compile(app, "heroku-24")

    assert result.returncode == 0, result.output
    assert "TRAFFIC_DUPLICATOR_GOR /app/vendor/goreplay/gor (gor 1.3.3) has no --input-http" in (
        result.stdout
    )
    assert "Replayer: gor 1.3.3 (/app/vendor/goreplay/gor), fed GoReplay framing" in result.stdout


def test_gor_config_var_naming_no_file_fails_the_build(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = _node_app(hooks, runtime_server)
    app.set_config("TRAFFIC_DUPLICATOR_GOR", "/app/vendor/goreplay/gor")

    result = hooks.compile(app, "heroku-24")

    # Before, the build trusted the setting and the dyno then refused to start.
    assert result.returncode == 1
    assert result.stderr.count(" !     ") == 1, result.stderr
    assert (
        " !     Error: the dyno would refuse to start: "
        "TRAFFIC_DUPLICATOR_GOR=/app/vendor/goreplay/gor is not an executable file; "
        "fix or unset it\n"
    ) in result.stderr


def test_options_config_var_names_the_file_that_is_checked(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("node")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url("python.tar.gz"))
    app.set_config("TRAFFIC_DUPLICATOR_OPTIONS", "/app/config/staging.options")
    (app.build_dir / "config" / "staging.options").write_text("--output-htp http://x\n")

    result = hooks.compile(app, "heroku-24")

    assert result.returncode == 1
    assert "-----> Validating config/staging.options" in result.stdout
    assert "config/staging.options line 1: unknown flag --output-htp" in result.stderr
