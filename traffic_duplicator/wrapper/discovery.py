"""The facts the engine decision needs, read from disk: gor binaries, Gemfile.lock, PATH.

The same code serves the dyno at boot and the build. The build looks in BUILD_DIR but must
name every path as the dyno will see it (under /app), so that both print the same reasons:
`AppDir` maps between where the app is now and where the dyno runs it. Which programs the
dyno will have on its PATH is known only to the dyno, so it comes in as a function: at boot
it searches PATH, at build time it is the build's best prediction (`wrapper.explain`).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from traffic_duplicator.wrapper.engines import EngineFacts, GorBinary
from traffic_duplicator.wrapper.settings import GOR, EngineSettings, ProxyMode, ReplayerMode

# `gor --help` of any version prints at once; a binary that hangs is not one we can use.
GOR_HELP_TIMEOUT = 5.0
# Bundler's lockfile lists a gem as `    em-proxy (0.1.9)` under specs and `  em-proxy` under
# DEPENDENCIES; a gem whose name only starts with em-proxy does not count.
_EM_PROXY_IN_LOCKFILE = re.compile(r"^\s+em-proxy(?: \(|\s*$)", re.MULTILINE)
BUNDLE_GEMFILE = "BUNDLE_GEMFILE"

OnPath = Callable[[str], bool]


@dataclass(frozen=True)
class AppDir:
    """The app's directory where it is now (`actual`) and where the dyno runs it (`shown`).

    At boot both are the working directory; during the build `actual` is BUILD_DIR and
    `shown` is /app, Heroku's HOME for the slug.
    """

    actual: Path
    shown: Path

    def locate(self, path: str | Path) -> Path:
        """Where a path the dyno would use (absolute, or relative to the app) is now."""
        given = Path(path)
        if not given.is_absolute():
            return self.actual / given
        try:
            return self.actual / given.relative_to(self.shown)
        except ValueError:
            return given

    def show(self, path: Path) -> str:
        """A path found here, written as the dyno would see it."""
        try:
            return str(self.shown / path.relative_to(self.actual))
        except ValueError:
            return str(path)

    def show_relative(self, path: Path) -> str:
        """Like `show`, but relative to the app when it is inside it (`Gemfile.lock`)."""
        try:
            return str(path.relative_to(self.actual))
        except ValueError:
            return self.show(path)


@dataclass(frozen=True)
class Site:
    """Where the engines will run: the app's directory, the buildpack's home (holding
    vendor/gor/gor) as it is now, and which programs the dyno's PATH will find."""

    app: AppDir
    home: Path
    on_path: OnPath


def _is_executable_file(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def probe_gor_help(actual: Path, shown: str, found_at: str) -> GorBinary:
    """Run `gor --help` once and keep what it printed (gor exits 2 after its usage)."""
    try:
        done = subprocess.run(
            [str(actual), "--help"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GOR_HELP_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return GorBinary(shown, found_at, problem=f"no answer within {GOR_HELP_TIMEOUT:g}s")
    except OSError as exc:
        problem = exc.strerror or str(exc)
        if exc.errno == errno.ENOENT:
            # The file is there (we checked), so what is missing is its #! interpreter.
            problem = "its #! interpreter was not found"
        return GorBinary(shown, found_at, problem=problem)
    text = (done.stdout + done.stderr).decode("utf-8", "replace")
    return GorBinary(shown, found_at, help_text=text)


def lockfile_path(env: Mapping[str, str], app: AppDir) -> Path:
    """The Gemfile.lock Bundler reads: BUNDLE_GEMFILE + ".lock", else the app's own."""
    gemfile = env.get(BUNDLE_GEMFILE, "").strip()
    return app.locate(gemfile + ".lock") if gemfile else app.actual / "Gemfile.lock"


def lockfile_listing_em_proxy(env: Mapping[str, str], app: AppDir) -> str | None:
    """The lockfile's name as the dyno sees it when it lists em-proxy, else None."""
    lockfile = lockfile_path(env, app)
    try:
        text = lockfile.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return app.show_relative(lockfile) if _EM_PROXY_IN_LOCKFILE.search(text) else None


def buildpack_home(settings: EngineSettings, package_dir: Path) -> Path:
    """The buildpack's directory: TRAFFIC_DUPLICATOR_HOME, else the one holding this package."""
    return settings.home if settings.home is not None else package_dir.parent


def _find_gor(
    settings: EngineSettings, app: AppDir, home: Path
) -> tuple[GorBinary | None, tuple[str, ...], str | None]:
    """The first gor in the search order, the places searched, and a bad-setting problem."""
    candidates: list[tuple[Path, str]] = []
    problem: str | None = None
    if settings.gor_path:
        explicit = app.locate(settings.gor_path)
        if not _is_executable_file(explicit):
            problem = f"{GOR}={settings.gor_path} is not an executable file; fix or unset it"
        candidates.append((explicit, GOR))
    candidates.append((app.actual / "bin" / "gor", "the app's bin/gor"))
    candidates.append((home / "vendor" / "gor" / "gor", "the buildpack's vendor/gor/gor"))
    searched: list[str] = []
    for path, found_at in candidates:
        searched.append(app.show(path))
        if _is_executable_file(path):
            return probe_gor_help(path, app.show(path), found_at), tuple(searched), problem
    return None, tuple(searched), problem


def gather_facts(
    settings: EngineSettings,
    env: Mapping[str, str],
    site: Site,
    real_gor_flags: tuple[str, ...] = (),
) -> EngineFacts:
    """Look for gor (in order: TRAFFIC_DUPLICATOR_GOR, the app's bin/gor, vendor/gor/gor under
    the home), em-proxy in the Gemfile.lock Bundler reads, and bundle / em-proxy on PATH.
    What the settings rule out is not looked at (no `gor --help` when the replayer is
    built in)."""
    gor: GorBinary | None = None
    searched: tuple[str, ...] = ()
    problem: str | None = None
    if settings.replayer is not ReplayerMode.BUILTIN:
        gor, searched, problem = _find_gor(settings, site.app, site.home)
    lockfile: str | None = None
    bundle = em_proxy = False
    if settings.proxy is not ProxyMode.BUILTIN:
        lockfile = lockfile_listing_em_proxy(env, site.app)
        bundle = site.on_path("bundle")
        em_proxy = site.on_path("em-proxy")
    return EngineFacts(
        gor=gor,
        gor_searched=searched,
        gor_setting_problem=problem,
        lockfile_lists_em_proxy=lockfile,
        bundle_on_path=bundle,
        em_proxy_on_path=em_proxy,
        real_gor_flags=real_gor_flags,
    )


def discover_engines(
    settings: EngineSettings,
    env: Mapping[str, str],
    cwd: Path,
    package_dir: Path,
    real_gor_flags: tuple[str, ...] = (),
) -> EngineFacts:
    """The facts at boot: the app is the working directory, PATH is the dyno's own."""
    app = AppDir(cwd, cwd)
    search_path = env.get("PATH", os.defpath)

    def on_path(name: str) -> bool:
        return shutil.which(name, path=search_path) is not None

    site = Site(app, app.locate(buildpack_home(settings, package_dir)), on_path)
    return gather_facts(settings, env, site, real_gor_flags)
