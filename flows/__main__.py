"""``python -m flows``: run the pipeline flow, start the local Prefect server, serve or deploy.

    python -m flows server               # the project's Prefect server + UI on http://127.0.0.1:4200
    python -m flows serve                # serve the scheduled deployments (starts the server if needed)
    python -m flows run                  # run the pipeline flow once, now
    python -m flows deploy --pool NAME   # register the deployments with a work pool instead

Without ``--api-url`` (or ``PREFECT_API_URL``), ``serve`` and ``deploy`` use the project's local
server on 127.0.0.1 (``flows.server_port``), and ``run`` records its run there if it is up, else in
a temporary in-process server over the same database (.prefect/prefect.db).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Optional

import typer

import flows  # noqa: F401 - sets PREFECT_HOME before Prefect is imported
from elmo.errors import USER_ERRORS
from flows.server import api_url as local_api, is_up, local_server
from flows.workspace import resolve_root, workspace_params

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

RootOpt = typer.Option(None, "--root", help="workspace (DVC repository root); default: around the current directory")
ApiOpt = typer.Option(None, "--api-url", help="Prefect API to use, e.g. http://host:4200/api "
                                             "(default: $PREFECT_API_URL, else the project's local server)")
PortOpt = typer.Option(None, "--port", help="port of the local server on 127.0.0.1 (default: flows.server_port)")


def _fail(err: BaseException, code: int = 2) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _workspace(root: Optional[Path]):
    try:
        workspace = resolve_root(root)
        return workspace, workspace_params(workspace)
    except USER_ERRORS as err:
        _fail(err)


def _use_api(url: str) -> None:
    """Point Prefect at ``url``. Prefect reads its settings when first imported, and nothing in
    this module imports it before this is called."""
    assert "prefect" not in sys.modules, "Prefect was imported before its API URL was chosen"
    os.environ["PREFECT_API_URL"] = url


@app.command()
def run(
    root: Optional[Path] = RootOpt,
    target: list[str] = typer.Option([], "--target", help="run only this stage and what it depends on (repeatable)"),
    force: list[str] = typer.Option([], "--force", help="rerun this stage even if up to date (repeatable)"),
    set_: list[str] = typer.Option([], "--set", help="dotted.key=value change to params.yaml first (repeatable)"),
    api_url: Optional[str] = ApiOpt,
) -> None:
    """Run the pipeline flow once: every stage DVC says changed; the rest are cache hits."""
    workspace, params = _workspace(root)
    url = api_url or os.environ.get("PREFECT_API_URL")
    if url is None and is_up(local_api(params.flows.server_port)):
        url = local_api(params.flows.server_port)
    if url:
        _use_api(url)
    else:  # Prefect starts a temporary server; give it time on a busy machine (its default is 20 s)
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from flows.pipeline import pipeline

    try:
        result = pipeline(root=str(workspace), targets=target or None, force=force or None, overrides=set_ or None)
    except USER_ERRORS as err:
        _fail(err, 1)
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2, default=str))


@app.command()
def server(root: Optional[Path] = RootOpt, port: Optional[int] = PortOpt) -> None:
    """Start the project's Prefect server (API + UI) on 127.0.0.1 and keep it up until Ctrl-C."""
    port = port or _workspace(root)[1].flows.server_port
    if is_up(local_api(port)):
        typer.echo(f"a Prefect server already answers at {local_api(port)}")
        return
    try:
        with local_server(port) as url:
            typer.echo(f"Prefect server at {url} (UI: {url[:-len('/api')]}); Ctrl-C stops it", err=True)
            _wait_for_interrupt()
    except USER_ERRORS as err:
        _fail(err)


@app.command()
def serve(root: Optional[Path] = RootOpt, port: Optional[int] = PortOpt, api_url: Optional[str] = ApiOpt) -> None:
    """Serve the nightly and monthly deployments until Ctrl-C (the flows run in this process's venv)."""
    workspace, params = _workspace(root)
    _stop_on_sigterm()
    url = api_url or os.environ.get("PREFECT_API_URL")
    try:
        with contextlib.nullcontext(url) if url else local_server(port or params.flows.server_port) as url:
            _use_api(url)
            typer.echo(f"serving deployments of {workspace} against {url}", err=True)
            from flows.deployments import serve as serve_deployments

            serve_deployments(workspace, params.flows)
    except USER_ERRORS as err:
        _fail(err)


@app.command()
def deploy(
    pool: str = typer.Option(..., "--pool", help="work pool whose workers will run the flows"),
    root: Optional[Path] = RootOpt,
    port: Optional[int] = PortOpt,
    api_url: Optional[str] = ApiOpt,
) -> None:
    """Register the deployments with a work pool (run them with `prefect worker start --pool NAME`)."""
    workspace, params = _workspace(root)
    url = api_url or os.environ.get("PREFECT_API_URL") or local_api(port or params.flows.server_port)
    if not is_up(url):
        _fail(RuntimeError(f"no Prefect API answers at {url}; start one with `python -m flows server`"))
    _use_api(url)
    from flows.deployments import deploy as deploy_deployments

    ids = deploy_deployments(workspace, params.flows, pool)
    typer.echo(json.dumps({"api": url, "pool": pool, "deployments": ids}, indent=2))


def _stop_on_sigterm() -> None:
    """Ctrl-C and SIGTERM both stop this process cleanly, stopping what it started (the server).

    SIGINT is set explicitly: a process started in the background by a non-interactive shell
    inherits SIGINT ignored, and would otherwise never see Ctrl-C/``kill -INT``.
    """
    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_term)


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM."""
    _stop_on_sigterm()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    app(prog_name="python -m flows")
