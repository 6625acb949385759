"""bin/detect and bin/release, run for real on fixture apps."""

from __future__ import annotations

import yaml

from tests.buildpack.conftest import Hooks


def test_detect_accepts_an_app_with_gor_options(hooks: Hooks) -> None:
    app = hooks.app("rails")
    result = hooks.detect(app)
    assert result.returncode == 0, result.output
    assert result.stdout == "Traffic Duplicator\n"


def test_detect_rejects_an_app_without_gor_options_and_says_how_to_add_it(hooks: Hooks) -> None:
    app = hooks.app("no-options")
    result = hooks.detect(app)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert "config/gor.options not found" in lines[0]
    assert "--output-http" in lines[0]


def test_detect_does_not_take_a_directory_for_the_options_file(hooks: Hooks) -> None:
    app = hooks.app("no-options")
    (app.build_dir / "config" / "gor.options").mkdir(parents=True)
    assert hooks.detect(app).returncode == 1


def test_release_prints_yaml_without_addons_or_process_types(hooks: Hooks) -> None:
    app = hooks.app("rails")
    result = hooks.release(app)
    assert result.returncode == 0, result.output
    assert result.stderr == ""
    assert yaml.safe_load(result.stdout) == {"addons": [], "default_process_types": {}}
