"""The project's local Prefect server: ``prefect server start`` on 127.0.0.1, SQLite in .prefect/.

:func:`local_server` reuses a server already answering on the port, or starts one as a child
process (its log goes to ``$PREFECT_HOME/server.log``) and stops it on exit, bounded in time.
Nothing here imports Prefect, so a caller can still choose ``PREFECT_API_URL`` afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from elmo.errors import StageError

HOST = "127.0.0.1"
STOP_TIMEOUT_S = 30.0


def api_url(port: int) -> str:
    return f"http://{HOST}:{port}/api"


def is_up(url: str, timeout: float = 2.0) -> bool:
    """Whether a Prefect API answers its health check at ``url`` (".../api")."""
    try:
        return httpx.get(url.rstrip("/") + "/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)  # the server itself has no upstream API
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("DO_NOT_TRACK", "1")
    return env


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def stop(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> int:
    """Ask a server process to stop (SIGTERM: uvicorn shuts down gracefully); kill it after ``timeout`` s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM when the parent dies (even by SIGKILL),
    so a killed ``python -m flows serve`` never leaves an orphaned server behind."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def local_server(port: int, startup_timeout: float = 180.0) -> Iterator[str]:
    """Yield the API URL of the project's Prefect server on 127.0.0.1:``port``, starting it if needed."""
    url = api_url(port)
    if is_up(url):
        yield url
        return
    home = Path(os.environ.get("PREFECT_HOME", ".prefect"))
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "server.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)],
            env=server_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
    try:
        deadline = time.monotonic() + startup_timeout
        while not is_up(url):
            if proc.poll() is not None:
                raise StageError(f"the Prefect server exited with status {proc.returncode} while starting; "
                                 f"{log_path}:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise StageError(f"the Prefect server did not answer at {url} within {startup_timeout:g} s; "
                                 f"{log_path}:\n{_tail(log_path)}")
            time.sleep(0.5)
        yield url
    finally:
        stop(proc)
