"""Fixtures for running the real buildpack hooks on fixture apps in temporary folders.

- `buildpack`: a copy of the buildpack (bin/, lib/, vendor/, traffic_duplicator/) made once
  per session, so a test can add vendor/gor/gor and we can prove the hooks write nothing
  into the buildpack itself.
- `runtime_server`: a local HTTP server on 127.0.0.1 that serves test runtime archives
  built at test time with the layout of heroku/python's archives (bin/python3, lib/), and
  records every request it gets.
- `hooks`: runs bin/detect, bin/compile and bin/release with a Heroku-like environment.
- `web_round_trip`: starts a built app's web process and sends requests through $PORT.
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import io
import os
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import REPO_ROOT, running, wait_for_port, wait_until

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SYSTEM_PYTHON = "/usr/bin/python3"
# The PATH of a Heroku build or dyno, without this machine's pyenv and cargo shims.
HEROKU_PATH = "/usr/local/bin:/usr/bin:/bin"
HOOK_TIMEOUT = 60

# A runtime archive's bin/python3 for the tests: it stands in for CPython's shared build by
# refusing to start unless its lib/ is on LD_LIBRARY_PATH (as libpython3.13.so would), logs
# how it was started when TD_TEST_PYTHON_LOG is set, and then runs the system Python.
FAKE_SHARED_PYTHON = """#!/bin/sh
prefix=$(cd "$(dirname "$0")/.." && pwd)
case ":${LD_LIBRARY_PATH:-}:" in
*":$prefix/lib:"*) ;;
*)
    echo "$0: error while loading shared libraries: libpython3.13.so.1.0: cannot open \
shared object file: No such file or directory" >&2
    exit 127
    ;;
esac
if [ -n "${TD_TEST_PYTHON_LOG:-}" ]; then
    printf '%s|%s|%s|%s\\n' "$0" "$*" "${LD_LIBRARY_PATH:-}" "${PYTHONPATH:-}" \
        >>"$TD_TEST_PYTHON_LOG"
fi
exec /usr/bin/python3 "$@"
"""


def _tar_bytes(files: dict[str, tuple[bytes, int]], symlinks: dict[str, str]) -> bytes:
    """A tar archive (entries under ./ like heroku/python's) of files and symlinks."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = sorted({str(Path(name).parent) for name in files} - {"."})
        for directory in directories:
            info = tarfile.TarInfo(f"./{directory}")
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
        for name, target in sorted(symlinks.items()):
            info = tarfile.TarInfo(f"./{name}")
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def runtime_tar() -> bytes:
    """An uncompressed runtime archive laid out like heroku/python's."""
    return _tar_bytes(
        {
            "bin/python3": (FAKE_SHARED_PYTHON.encode(), 0o755),
            "lib/libpython3.13.so.1.0": (b"", 0o644),
            "include/python3.13/Python.h": (b"", 0o644),
        },
        {"bin/python": "python3"},
    )


def gzip_bytes(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, mtime=0)


def zstd_bytes(data: bytes) -> bytes | None:
    """zstd-compressed data, as heroku/python's .tar.zst archives; None without zstd."""
    if shutil.which("zstd") is None:
        return None
    return subprocess.run(
        ["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True, timeout=30
    ).stdout


@dataclass
class RuntimeServer:
    """Serves archives by path on 127.0.0.1 and records the paths requested."""

    files: dict[str, bytes]
    requests: list[str] = field(default_factory=list)
    port: int = 0
    _server: http.server.ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def count(self, path: str) -> int:
        with self._lock:
            return self.requests.count(f"/{path}")

    def start(self) -> RuntimeServer:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner.requests.append(self.path)
                body = owner.files.get(self.path.split("?")[0].lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture(scope="session")
def runtime_server() -> Iterator[RuntimeServer]:
    tar = runtime_tar()
    files = {
        "python.tar.gz": gzip_bytes(tar),
        "garbage.tar.gz": b"this is not an archive at all\n" * 10,
        "no-python.tar.gz": gzip_bytes(
            _tar_bytes({"share/README": (b"no interpreter here\n", 0o644)}, {})
        ),
    }
    zst = zstd_bytes(tar)
    if zst is not None:
        files["python.tar.zst"] = zst
    server = RuntimeServer(files).start()
    try:
        yield server
    finally:
        server.stop()


def _copy_buildpack(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*.tmp")
    for name in ("bin", "lib", "traffic_duplicator"):
        shutil.copytree(REPO_ROOT / name, dest / name, ignore=ignore, symlinks=True)
    (dest / "vendor" / "gor").mkdir(parents=True)
    readme = REPO_ROOT / "vendor" / "gor" / "README.md"
    if readme.exists():
        shutil.copy2(readme, dest / "vendor" / "gor" / "README.md")
    return dest


@pytest.fixture(scope="session")
def buildpack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the buildpack as Heroku would check it out (no vendor/gor/gor)."""
    return _copy_buildpack(tmp_path_factory.mktemp("buildpack"))


@pytest.fixture
def buildpack_with_gor(tmp_path: Path) -> Path:
    """A copy of the buildpack that carries vendor/gor/gor (an old-style gor, 0.14.1)."""
    dest = _copy_buildpack(tmp_path / "buildpack-with-gor")
    write_fake_gor(dest / "vendor" / "gor" / "gor", "0.14.1")
    return dest


def write_fake_gor(path: Path, version: str) -> None:
    """A stand-in for a gor binary's `--help`: usage with the version and its flags, which
    list -input-http up to v0.14 (the flag was dropped in v0.15), exit status 2 like Go's."""
    major, minor = (int(part) for part in version.split(".")[:2])
    input_http = ""
    if (major, minor) < (0, 15):
        input_http = "  -input-http value\\n    \\tRead requests from HTTP\\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "#!/bin/sh\n"
        'case "$1" in -h|-help|--help)\n'
        "  printf 'Gor is a simple http traffic replication tool written in Go.\\n'\n"
        f"  printf 'Current Version: {version}\\n\\n'\n"
        f"  printf '{input_http}  -input-tcp value\\n    \\tUsed for internal communication\\n'\n"
        "  exit 2 ;;\n"
        "esac\n"
        "exit 0\n"
    )
    path.chmod(0o755)


@dataclass
class HookResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class App:
    """A fixture app copied to a temporary BUILD_DIR, with its CACHE_DIR and ENV_DIR."""

    build_dir: Path
    cache_dir: Path
    env_dir: Path
    home: Path

    def set_config(self, name: str, value: str) -> None:
        (self.env_dir / name).write_text(value)


def tree_digest(root: Path) -> dict[str, str]:
    """Every path under root with its kind, mode and content hash (symlinks by target)."""
    digest: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            digest[rel] = f"link:{os.readlink(path)}"
        elif path.is_dir():
            digest[rel] = "dir"
        else:
            mode = path.stat().st_mode & 0o777
            digest[rel] = f"{mode:o}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    return digest


class Hooks:
    """Runs the buildpack's hooks the way Heroku's build system calls them."""

    def __init__(self, buildpack: Path, tmp_path: Path) -> None:
        self.buildpack = buildpack
        self.tmp_path = tmp_path

    def app(self, fixture: str | None, name: str = "app") -> App:
        base = self.tmp_path / name
        build_dir = base / "build"
        if fixture is None:
            build_dir.mkdir(parents=True)
        else:
            shutil.copytree(FIXTURES / fixture, build_dir, symlinks=True)
        for sub in ("cache", "env", "home"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        return App(build_dir, base / "cache", base / "env", base / "home")

    def env(self, app: App, stack: str | None, **extra: str) -> dict[str, str]:
        env = {
            "PATH": HEROKU_PATH,
            "HOME": str(app.home),
            # A TMPDIR that does not exist makes any stray mktemp outside CACHE_DIR fail.
            "TMPDIR": str(self.tmp_path / "no-such-tmpdir"),
            "LANG": "C.UTF-8",
            # No uvloop download in every build: tests/buildpack/test_uvloop.py turns it on.
            "TRAFFIC_DUPLICATOR_UVLOOP": "0",
        }
        if stack is not None:
            env["STACK"] = stack
        env.update(extra)
        return env

    def run(self, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> HookResult:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=HOOK_TIMEOUT,
            check=False,
        )
        return HookResult(proc.returncode, proc.stdout, proc.stderr)

    def detect(self, app: App) -> HookResult:
        return self.run(
            [str(self.buildpack / "bin" / "detect"), str(app.build_dir)], self.env(app, None)
        )

    def compile(
        self,
        app: App,
        stack: str | None,
        *,
        buildpack: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> HookResult:
        root = buildpack or self.buildpack
        argv = [
            str(root / "bin" / "compile"),
            str(app.build_dir),
            str(app.cache_dir),
            str(app.env_dir),
        ]
        return self.run(argv, self.env(app, stack, **(env or {})))

    def release(self, app: App) -> HookResult:
        return self.run(
            [str(self.buildpack / "bin" / "release"), str(app.build_dir)], self.env(app, None)
        )


@pytest.fixture
def hooks(buildpack: Path, tmp_path: Path) -> Hooks:
    return Hooks(buildpack, tmp_path)


def install_app_python(build_dir: Path) -> Path:
    """Gives an app the .heroku/python that heroku/python installs (a shared build)."""
    python = build_dir / ".heroku" / "python" / "bin" / "python3"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_SHARED_PYTHON.replace("libpython3.13", "libpython3.12"))
    python.chmod(0o755)
    (python.parent / "python").symlink_to("python3")
    lib = build_dir / ".heroku" / "python" / "lib"
    lib.mkdir()
    (lib / "libpython3.12.so.1.0").write_bytes(b"")
    return python


# Starting three processes on a busy 2-core machine can take a few seconds.
BOOT_TIMEOUT = 30.0
MIRROR_TIMEOUT = 15.0


def http_request(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request to 127.0.0.1:port; returns the status and the body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "text/plain"} if body else {}
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def web_round_trip(
    argv: list[str],
    *,
    env: dict[str, str] | None,
    cwd: Path,
    port: int,
    log: Path,
    requests: list[tuple[str, str, bytes]],
    mirrored: Callable[[], bool],
) -> list[tuple[int, bytes]]:
    """Starts a web process (output to `log`; `env` None means tests.support's), sends
    `requests` (method, path, body) through $PORT once it listens, waits until `mirrored()`
    holds, checks the process is still up, and stops it. Returns (status, body) for each."""
    with (
        log.open("wb") as output,
        running(argv, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT) as web,
    ):
        try:
            wait_for_port(port, timeout=BOOT_TIMEOUT)
            answers = [http_request(port, *request) for request in requests]
            wait_until(
                mirrored,
                timeout=MIRROR_TIMEOUT,
                message="the requests were not mirrored to the destination",
            )
        finally:
            exit_code = web.poll()
        assert exit_code is None, log.read_text()
    return answers
