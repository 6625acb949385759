"""An emulated Cloud Native Buildpack lifecycle (Buildpack API 0.10) for the tests.

It runs the real bin/detect and bin/build the way buildpacks/lifecycle does, and computes a
process's environment from the layers the way its launcher does. What it emulates, from
buildpacks/spec buildpack.md (API 0.10) and lifecycle's buildpack/detect.go and build.go:

- detect: cwd is the app; argv is `bin/detect PLATFORM_DIR PLAN_PATH` (still passed, though
  deprecated); the environment has CNB_PLATFORM_DIR, CNB_BUILD_PLAN_PATH, CNB_BUILDPACK_DIR,
  CNB_TARGET_* and each file of PLATFORM_DIR/env/ as a variable (clear-env is false);
- build: cwd is the app; argv is `bin/build LAYERS_DIR PLATFORM_DIR PLAN_PATH`; the
  environment adds CNB_LAYERS_DIR and CNB_BP_PLAN_PATH, and the bin/ and lib/ of earlier
  buildpacks' `build = true` layers on PATH and LD_LIBRARY_PATH;
- rebuild: a `cache = true` layer keeps its directory and its TOML without [types]; any
  other layer of ours is gone;
- launch: every `launch = true` layer's bin/ on PATH and lib/ on LD_LIBRARY_PATH (later
  buildpacks first), then its env/ and env.launch/ files, by the spec's modification rules.

Earlier buildpacks of the group (heroku/python, heroku/ruby, heroku/nodejs on Fir) are
stood in for by layers the test writes with `earlier_layer`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.buildpack.conftest import (
    FAKE_SHARED_PYTHON,
    FIXTURES,
    HEROKU_PATH,
    HookResult,
    Hooks,
    _copy_buildpack,
    web_round_trip,
)
from tests.support import REPO_ROOT, RecordingServer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the tests run on 3.11+
    tomllib = pytest.importorskip("tomli")

BUILDPACK_ID = "traffic-duplicator/traffic-duplicator"
LAYER = "traffic-duplicator"
# What a launched web process is sent through $PORT, and must mirror.
REQUESTS = [("GET", "/hello?from=cnb", b""), ("POST", "/orders", b'{"qty": 3}')]
MIRRORED = [(b"GET", b"/hello?from=cnb", b""), (b"POST", b"/orders", b'{"qty": 3}')]


def escape_id(buildpack_id: str) -> str:
    """The directory name the lifecycle gives a buildpack's layers (launch.EscapeID)."""
    return buildpack_id.replace("/", "_")


def dpkg_arch() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        data: dict[str, Any] = tomllib.load(handle)
    return data


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@dataclass
class Lifecycle:
    """One app's build and launch: the app dir, the platform dir, the layers and the group."""

    root: Path
    buildpack: Path
    distro_version: str = "24.04"
    # The buildpacks of the group that run before ours, in order.
    earlier: list[str] = field(default_factory=list)

    @property
    def group(self) -> list[str]:
        return [*self.earlier, BUILDPACK_ID]

    @property
    def app(self) -> Path:
        return self.root / "workspace"

    @property
    def platform(self) -> Path:
        return self.root / "platform"

    @property
    def layers_root(self) -> Path:
        return self.root / "layers"

    @property
    def layers(self) -> Path:
        """Our buildpack's layers directory (CNB_LAYERS_DIR)."""
        return self.layers_root / escape_id(BUILDPACK_ID)

    @property
    def layer(self) -> Path:
        return self.layers / LAYER

    def copy_app(self, fixture: str) -> None:
        if self.app.exists():
            shutil.rmtree(self.app)
        shutil.copytree(FIXTURES / fixture, self.app, symlinks=True)
        (self.platform / "env").mkdir(parents=True, exist_ok=True)
        self.layers.mkdir(parents=True, exist_ok=True)

    def set_config(self, name: str, value: str) -> None:
        (self.platform / "env" / name).write_text(value)

    def earlier_layer(
        self,
        buildpack_id: str,
        name: str,
        files: dict[str, str | Path],
        *,
        launch: bool = True,
        build: bool = True,
    ) -> Path:
        """A layer of a buildpack that runs before ours. `files` maps paths in the layer to
        their text, or to a Path to link to; files in bin/ are made executable."""
        if buildpack_id not in self.earlier:
            self.earlier.append(buildpack_id)
        layer = self.layers_root / escape_id(buildpack_id) / name
        for rel, content in files.items():
            path = layer / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                path.symlink_to(content)
                continue
            path.write_text(content)
            if rel.startswith("bin/"):
                path.chmod(0o755)
        layer.with_suffix(".toml").write_text(
            f"[types]\nlaunch = {str(launch).lower()}\nbuild = {str(build).lower()}\ncache = true\n"
        )
        return layer

    def _target_env(self) -> dict[str, str]:
        return {
            "CNB_TARGET_OS": "linux",
            "CNB_TARGET_ARCH": dpkg_arch(),
            "CNB_TARGET_DISTRO_NAME": "ubuntu",
            "CNB_TARGET_DISTRO_VERSION": self.distro_version,
        }

    def _phase_env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": HEROKU_PATH,
            "HOME": str(self.root / "home"),
            # A TMPDIR that does not exist makes any stray mktemp outside the layers fail.
            "TMPDIR": str(self.root / "no-such-tmpdir"),
            "LANG": "C.UTF-8",
            "CNB_PLATFORM_DIR": str(self.platform),
            "CNB_BUILDPACK_DIR": str(self.buildpack),
            **self._target_env(),
        }
        for var in sorted((self.platform / "env").iterdir()):
            env[var.name] = var.read_text()
        env.update(extra)
        return env

    def _run(self, argv: list[str], env: dict[str, str]) -> HookResult:
        return Hooks(self.buildpack, self.root).run(argv, env, cwd=self.app)

    def detect(self) -> HookResult:
        plan = self.root / "plan.toml"
        plan.write_text("")
        env = self._phase_env(CNB_BUILD_PLAN_PATH=str(plan))
        return self._run(
            [str(self.buildpack / "bin" / "detect"), str(self.platform), str(plan)], env
        )

    def build(self, **extra_env: str) -> HookResult:
        plan = self.root / "bp-plan.toml"
        plan.write_text("")
        env = self._phase_env(
            CNB_LAYERS_DIR=str(self.layers),
            CNB_BP_PLAN_PATH=str(plan),
            **extra_env,
        )
        self._add_layer_paths(env, self.earlier, "build")
        argv = [
            str(self.buildpack / "bin" / "build"),
            str(self.layers),
            str(self.platform),
            str(plan),
        ]
        return self._run(argv, env)

    def build_with_classic(
        self, hooks: Hooks, fixture: str, config: dict[str, str], stack: str = "heroku-24"
    ) -> tuple[HookResult, HookResult]:
        """The fixture app with the same config vars, built by this bin/build and by the
        classic bin/compile on STACK: (CNB result, classic result)."""
        self.copy_app(fixture)
        classic_app = hooks.app(fixture)
        for name, value in config.items():
            self.set_config(name, value)
            classic_app.set_config(name, value)
        return self.build(), hooks.compile(classic_app, stack)

    def _layers_of(self, buildpack_id: str, kind: str) -> list[Path]:
        """The buildpack's layers whose TOML sets `kind = true`, by name."""
        bp_dir = self.layers_root / escape_id(buildpack_id)
        found = []
        for toml in sorted(bp_dir.glob("*.toml")):
            if toml.stem in {"launch", "build", "store"}:
                continue
            if read_toml(toml).get("types", {}).get(kind) is True:
                found.append(toml.with_suffix(""))
        return found

    def _add_layer_paths(self, env: dict[str, str], group: list[str], kind: str) -> None:
        # Processing the group in order and prepending puts later buildpacks first.
        for buildpack_id in group:
            for layer in reversed(self._layers_of(buildpack_id, kind)):
                for var, sub in (("PATH", "bin"), ("LD_LIBRARY_PATH", "lib")):
                    if (layer / sub).is_dir():
                        old = env.get(var, "")
                        env[var] = str(layer / sub) + (":" + old if old else "")

    def restore_for_rebuild(self, fixture: str) -> None:
        """What the lifecycle leaves before the next build of the same app: cached layers
        with their metadata (no [types]); a fresh copy of the app."""
        for toml in sorted(self.layers.glob("*.toml")):
            data = read_toml(toml)
            layer = toml.with_suffix("")
            if data.get("types", {}).get("cache") is True:
                lines = ["[metadata]"]
                lines += [
                    f"{k} = {_toml_string(str(v))}" for k, v in data.get("metadata", {}).items()
                ]
                toml.write_text("\n".join(lines) + "\n")
            else:
                toml.unlink()
                shutil.rmtree(layer, ignore_errors=True)
        self.copy_app(fixture)

    def launch_env(self, base_path: str, **extra: str) -> dict[str, str]:
        """The environment the launcher gives a process: the platform's, then the layers'."""
        env = {"PATH": base_path, "HOME": str(self.root / "home"), "LANG": "C.UTF-8", **extra}
        self._add_layer_paths(env, self.group, "launch")
        for buildpack_id in self.group:
            for layer in self._layers_of(buildpack_id, "launch"):
                for sub in ("env", "env.launch"):
                    if (layer / sub).is_dir():
                        apply_env_dir(env, layer / sub)
        return env

    def web_command(self) -> str:
        for line in (self.app / "Procfile").read_text().splitlines():
            if line.startswith("web:"):
                return line.removeprefix("web:").strip()
        raise AssertionError("the app's Procfile has no web process")

    def web_argv(self, env: dict[str, str]) -> list[str]:
        """heroku/procfile's process: `bash -c '<Procfile line>'`, bash found on PATH."""
        bash = shutil.which("bash", path=env["PATH"])
        assert bash is not None, "no bash on the launch PATH"
        return [bash, "-c", self.web_command()]

    def serve_and_mirror(
        self, env: dict[str, str], port: int, destination: RecordingServer, log: Path
    ) -> tuple[list[tuple[int, bytes]], list[tuple[bytes, bytes, bytes]]]:
        """Starts the web process with the launch env `env`, sends REQUESTS through `port`,
        waits until `destination` has them all, and stops it (output in `log`). Returns the
        answers (status, body) and the mirrored requests (method, target, body) by target."""
        answers = web_round_trip(
            self.web_argv(env),
            env=env,
            cwd=self.app,
            port=port,
            log=log,
            requests=REQUESTS,
            mirrored=lambda: destination.count() >= len(REQUESTS),
        )
        mirrored = sorted(destination.snapshot(), key=lambda r: r.target)
        return answers, [(r.method, r.target, r.body) for r in mirrored]


def apply_env_dir(env: dict[str, str], directory: Path) -> None:
    """Applies one layer's env/ or env.launch/ files: NAME or NAME.override sets, NAME.default
    sets when unset or empty, NAME.prepend / NAME.append join with NAME.delim (if any)."""
    files = {path.name: path.read_text() for path in directory.iterdir() if path.is_file()}
    for filename, value in sorted(files.items()):
        name, _, action = filename.partition(".")
        delim = files.get(f"{name}.delim", "")
        if action in ("", "override"):
            env[name] = value
        elif action == "default":
            if not env.get(name):
                env[name] = value
        elif action == "prepend":
            env[name] = value + (delim + env[name] if env.get(name) else "")
        elif action == "append":
            env[name] = (env[name] + delim if env.get(name) else "") + value
        elif action != "delim":
            raise AssertionError(f"unknown env file action in {directory / filename}")


def tools_dir(root: Path, *names: str) -> Path:
    """A directory of symlinks to just the named system tools, to be the whole base PATH."""
    tools = root / "tools"
    tools.mkdir(parents=True, exist_ok=True)
    for name in names:
        target = shutil.which(name, path="/usr/bin:/bin")
        assert target is not None, f"{name} is not installed"
        (tools / name).symlink_to(target)
    return tools


@pytest.fixture(scope="session")
def cnb_buildpack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the buildpack as a CNB platform unpacks it (with buildpack.toml)."""
    dest = _copy_buildpack(tmp_path_factory.mktemp("cnb-buildpack"))
    shutil.copy2(REPO_ROOT / "buildpack.toml", dest / "buildpack.toml")
    return dest


def group_python(lifecycle: Lifecycle) -> Path:
    """heroku/python's layers as a Python app's build has them before ours: the interpreter
    (a shared build, like heroku/python's) in a launch and build layer."""
    layer = lifecycle.earlier_layer(
        "heroku/python",
        "python",
        {
            "bin/python3": FAKE_SHARED_PYTHON.replace("libpython3.13", "libpython3.12"),
            "lib/libpython3.12.so.1.0": "",
        },
    )
    return layer / "bin" / "python3"
