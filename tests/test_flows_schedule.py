"""The Prefect server's scheduler itself creates a run of a served deployment, and the run completes.

No other test waits for the scheduler: ``run_deployment`` and calling a flow create their runs
through the API, so a server whose scheduler service fails (SQLAlchemy 2.1 with prefect 3.8:
``Can't evaluate bulk DML statement`` every loop, only in the server log) passes them all while
*Upcoming* stays empty and nothing ever fires. Here the project's own deployments are served
(``python -m flows serve``, flows/deployments.py) with the nightly cron set to every minute, and
the test only watches: the run must come from the deployment's schedule, not from the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import test_flows_server as server_tests
from helpers.processes import stop_process
from helpers.toy_workspace import runs
from test_flows_server import REPO, STOP_S, _client, eventually, set_flows

# the fixtures of the server tests: this module's own server (module scope) and a fresh toy workspace
prefect_api, toy_template, ws = server_tests.prefect_api, server_tests.toy_template, server_tests.ws

pytestmark = pytest.mark.network

SCHEDULED_WITHIN_S = 30  # the server's recent-deployments scheduler loop is 5 s
DUE_WITHIN_S = 61  # `* * * * *`: the next minute
COMPLETED_WITHIN_S = 90  # from the run's scheduled time to Completed (four toy stages)


def _server_log() -> str:
    path = Path(os.environ["PREFECT_HOME"]) / "server.log"  # flows/server.py writes it there
    return path.read_text(errors="replace") if path.exists() else "(no server log)"


def _scheduler_errors() -> list[str]:
    return [line for line in _server_log().splitlines() if "InvalidRequestError" in line or "bulk DML" in line]


def test_scheduler_creates_and_completes_a_run(prefect_api: str, ws: Path, tmp_path: Path) -> None:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
    from prefect.client.schemas.sorting import FlowRunSort

    set_flows(ws, nightly_cron="* * * * *", timezone="UTC")
    env = {**os.environ, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    out = open(tmp_path / "serve.out", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "flows", "serve", "--root", str(ws), "--api-url", prefect_api],
                            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        with _client() as client:
            def served():
                assert proc.poll() is None, (tmp_path / "serve.out").read_text(errors="replace")
                deps = [d for d in client.read_deployments()
                        if d.name == "nightly" and d.parameters.get("root") == str(ws)]
                return deps[0] if deps else None

            nightly = eventually(served, "the served nightly deployment", timeout=240)
            assert [(s.schedule.cron, s.schedule.timezone) for s in nightly.schedules] == [("* * * * *", "UTC")]
            schedule_id = nightly.schedules[0].id
            of_nightly = FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[nightly.id]))

            # 1. the scheduler fills Upcoming: runs that the deployment's schedule created
            def upcoming():
                return client.read_flow_runs(flow_run_filter=of_nightly, sort=FlowRunSort.EXPECTED_START_TIME_ASC)

            deadline = time.monotonic() + SCHEDULED_WITHIN_S
            while not (scheduled := upcoming()) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert scheduled, (f"the scheduler created no run within {SCHEDULED_WITHIN_S} s (Upcoming stays empty); "
                               f"errors in the server log: {_scheduler_errors()[-2:]}")
            for run in scheduled:
                assert run.auto_scheduled and "auto-scheduled" in run.tags, run
                assert run.created_by is not None and run.created_by.type == "SCHEDULE", run.created_by
                assert run.created_by.id == schedule_id
            first = scheduled[0]
            due = first.expected_start_time.timestamp() - time.time()
            assert due <= DUE_WITHIN_S, f"the first scheduled run is {due:.0f} s away"
            assert first.parameters == {"root": str(ws)}

            # 2. the serving runner picks it up at its time and it completes, bounded in time
            def finished():
                run = client.read_flow_run(first.id)
                assert not (run.state.is_failed() or run.state.is_crashed() or run.state.is_cancelled()), (
                    run.state, (tmp_path / "serve.out").read_text(errors="replace")[-3000:])
                return run if run.state.is_completed() else None

            done = eventually(finished, "the scheduled run's completion", timeout=max(due, 0) + COMPLETED_WITHIN_S)
        assert done.auto_scheduled and done.created_by.type == "SCHEDULE"
        assert done.start_time.timestamp() >= first.expected_start_time.timestamp() - 15  # ran at its time
        assert runs(ws) == ["prepare", "train", "evaluate", "count"]
        assert _scheduler_errors() == []
    finally:
        rc = stop_process(proc, signal.SIGTERM, STOP_S)
        out.close()
    assert rc == 0, (tmp_path / "serve.out").read_text(errors="replace")[-3000:]
