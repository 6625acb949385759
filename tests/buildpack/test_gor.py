"""Which gor serves config/gor.options: the app's, the buildpack's vendor/gor, or none."""

from __future__ import annotations

from pathlib import Path

from tests.buildpack.conftest import Hooks, RuntimeServer, write_fake_gor

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
    assert (
        "       Using gor 0.14.1 (bin/gor, copied from the buildpack's vendor/gor/gor)\n"
        in result.stdout
    )
    assert "       Replayer: gor 0.14.1" in result.stdout
    assert "       It lists --input-http (v0.14 or older)" in result.stdout
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
    assert "       Using gor 1.3.3 (the app's bin/gor)\n" in result.stdout
    assert "Keeping the app's bin/gor; the buildpack's vendor/gor/gor is not used" in (
        result.stdout
    )
    assert "It has no --input-http (v0.15 or newer)" in result.stdout


def test_rebuild_in_place_still_knows_the_copied_gor_is_the_buildpacks(
    hooks: Hooks, buildpack_with_gor: Path, runtime_server: RuntimeServer
) -> None:
    app = _node_app(hooks, runtime_server)
    assert hooks.compile(app, "heroku-24", buildpack=buildpack_with_gor).returncode == 0

    again = hooks.compile(app, "heroku-24", buildpack=buildpack_with_gor)

    assert again.returncode == 0, again.output
    assert "copied from the buildpack's vendor/gor/gor" in again.stdout
    assert "the app's bin/gor" not in again.stdout


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


def test_a_gor_that_cannot_run_fails_the_build(hooks: Hooks, runtime_server: RuntimeServer) -> None:
    app = hooks.app("node")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url("python.tar.gz"))
    bad = app.build_dir / "bin" / "gor"
    bad.parent.mkdir()
    # Not a program this machine can run, e.g. a macOS build committed by mistake.
    bad.write_bytes(b"\xcf\xfa\xed\xfe" + b"\x00" * 64)
    bad.chmod(0o755)

    result = hooks.compile(app, "heroku-24")

    assert result.returncode == 1
    assert " !     Error: the app's bin/gor cannot run:" in result.stderr
    assert "git rm bin/gor" in result.stderr


def test_replayer_builtin_config_var_refuses_gor_only_flags_even_with_gor(
    hooks: Hooks, buildpack_with_gor: Path, runtime_server: RuntimeServer
) -> None:
    app = _node_app(hooks, runtime_server)
    app.set_config("TRAFFIC_DUPLICATOR_REPLAYER", "builtin\n")

    result = hooks.compile(app, "heroku-24", buildpack=buildpack_with_gor)

    # The wrapper would not use gor, so the file would fail at boot: fail the push instead.
    assert result.returncode == 1
    assert "TRAFFIC_DUPLICATOR_REPLAYER=builtin is set" in result.stdout
    assert "--output-http-track-response" in result.stderr


def test_gor_config_var_allows_gor_only_flags(hooks: Hooks, runtime_server: RuntimeServer) -> None:
    app = _node_app(hooks, runtime_server)
    app.set_config("TRAFFIC_DUPLICATOR_GOR", "/app/vendor/goreplay/gor")

    result = hooks.compile(app, "heroku-24")

    assert result.returncode == 0, result.output
    assert "Replayer: the gor at TRAFFIC_DUPLICATOR_GOR=/app/vendor/goreplay/gor" in result.stdout


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
