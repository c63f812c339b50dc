"""The flows against a real Prefect server that the tests start (the project's own command) and stop.

One server for the module (``python -m flows server`` on a free 127.0.0.1 port, SQLite in a tmp
PREFECT_HOME); each test builds its own toy DVC + git workspace (tests/helpers/toy_workspace.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers.processes import stop_process
from helpers.toy_workspace import make_toy_workspace, runs

pytestmark = pytest.mark.network

REPO = Path(__file__).resolve().parents[1]
SERVER_START_S = 300  # generous: a first start migrates a fresh SQLite database
STOP_S = 45


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dvc(ws: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=ws, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def dvc_status(ws: Path) -> dict:
    """What `dvc status` reports (DVC's own function, in-process: no interpreter start per call)."""
    from dvc.repo import Repo

    with Repo(str(ws)) as repo:  # keys are addressed from the cwd ("../ws/dvc.yaml:train"): keep the name
        return {key.rsplit("dvc.yaml:", 1)[-1]: value for key, value in repo.status().items()}


def dvc_repro_runs(ws: Path, tmp: Path) -> list[str]:
    """What plain `dvc repro` would execute now: run it on a copy of the workspace and see."""
    copy = tmp / "dvc-repro-copy"
    shutil.copytree(ws, copy, symlinks=True)
    runs(copy)
    _dvc(copy, "repro")
    return runs(copy)


def set_toy(ws: Path, **changes) -> None:
    data = yaml.safe_load((ws / "toy.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data[section][key] = value
    (ws / "toy.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def set_flows(ws: Path, **flows) -> None:
    data = yaml.safe_load((ws / "params.yaml").read_text())
    data["flows"].update(flows)
    (ws / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def outcomes(result: dict) -> dict[str, str]:
    return {r["stage"]: r["outcome"] for r in result["stages"]}


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    """The project's local server, started with the documented command and stopped at the end."""
    from flows.server import is_up

    home = tmp_path_factory.mktemp("prefect-home")
    old_home = os.environ.get("PREFECT_HOME")
    os.environ["PREFECT_HOME"] = str(home)  # before this process imports Prefect (if it hasn't yet)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = open(home / "flows-server.out", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "flows", "server", "--port", str(port)], cwd=REPO,
                            env={**os.environ, "PREFECT_HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not is_up(url):
            assert proc.poll() is None, (home / "flows-server.out").read_text(errors="replace")
            assert time.monotonic() < deadline, f"no server at {url} after {SERVER_START_S} s"
            time.sleep(0.5)
        from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

        with temporary_settings({PREFECT_API_URL: url, PREFECT_HOME: str(home)}):
            yield url
    finally:
        t0 = time.monotonic()
        rc = stop_process(proc, signal.SIGINT, STOP_S)
        log.close()
        if old_home is None:
            os.environ.pop("PREFECT_HOME", None)
        else:
            os.environ["PREFECT_HOME"] = old_home
    assert rc == 0, f"`python -m flows server` did not stop cleanly within {STOP_S} s (rc={rc})"
    assert not is_up(url, timeout=1), "the Prefect server outlived `python -m flows server`"
    assert time.monotonic() - t0 < STOP_S


@pytest.fixture(scope="module")
def toy_template(tmp_path_factory) -> Path:
    return make_toy_workspace(tmp_path_factory.mktemp("toy-template") / "ws")


@pytest.fixture
def ws(toy_template: Path, tmp_path: Path) -> Path:
    """A fresh toy workspace (a copy of one made once: git + dvc init cost seconds each)."""
    return Path(shutil.copytree(toy_template, tmp_path / "ws", symlinks=True))


def eventually(check, what: str, timeout: float = 60.0):
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what}: not there after {timeout:g} s"
        time.sleep(0.5)
    return result


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def test_pipeline_runs_then_caches_then_reruns_exactly_what_changed(prefect_api: str, ws: Path, tmp_path: Path) -> None:
    from flows.pipeline import crawl_and_retrain, pipeline


    # 1. end to end: every stage runs once, in DAG order, and dvc.lock records all of them
    first = pipeline(root=str(ws))
    assert runs(ws) == ["prepare", "train", "evaluate", "count"]
    assert outcomes(first) == dict.fromkeys(["prepare", "train", "evaluate", "count"], "ran")
    assert dvc_status(ws) == {}
    assert json.loads((ws / "metrics.json").read_text()) == {"score": 7.5}
    lock = yaml.safe_load((ws / "dvc.lock").read_text())["stages"]
    assert {r["stage"]: r["outs"] for r in first["stages"]}["train"] == {"model.txt": lock["train"]["outs"][0]["md5"]}

    # 2. nothing changed: every task is a cache hit, no stage executes, and it is quick
    t0 = time.monotonic()
    second = pipeline(root=str(ws))
    took = time.monotonic() - t0
    assert runs(ws) == []
    assert outcomes(second) == dict.fromkeys(["prepare", "train", "evaluate", "count"], "cached")
    assert took <= 10, f"an all-cached run took {took:.1f} s"

    # 3. one param changes: exactly the stages DVC would rerun run, the rest are cache hits
    set_toy(ws, train__lr=1.5)
    assert list(dvc_status(ws)) == ["train"]
    assert dvc_repro_runs(ws, tmp_path) == ["train", "evaluate"]  # what DVC alone decides
    third = pipeline(root=str(ws))
    assert runs(ws) == ["train", "evaluate"]
    assert outcomes(third) == {"prepare": "cached", "train": "ran", "evaluate": "ran", "count": "cached"}
    assert dvc_status(ws) == {} and json.loads((ws / "metrics.json").read_text()) == {"score": 22.5}

    # 4. a param of the first stage, set through the flow (validated, written to params.yaml)
    fourth = pipeline(root=str(ws), overrides=["seed=2"])
    assert yaml.safe_load((ws / "params.yaml").read_text())["seed"] == 2
    assert runs(ws) == ["prepare", "train", "evaluate", "count"]
    assert set(outcomes(fourth).values()) == {"ran"}

    # 5. an output deleted behind DVC's back: no cache hit for its stage, whose task has DVC
    #    restore it (from DVC's run-cache: same deps and params ran before, so the cmd doesn't
    #    run); the restored output has its old hash, so downstream stays a cache hit
    (ws / "model.txt").unlink()
    assert "train" in dvc_status(ws)
    fifth = pipeline(root=str(ws))
    assert runs(ws) == [] and (ws / "model.txt").exists()
    assert outcomes(fifth) == {"prepare": "cached", "train": "ran", "evaluate": "cached", "count": "cached"}
    assert fifth["stages"][1]["action"] == "restored from the DVC run-cache"

    # 6. the monthly flow: its parameters set params, its refresh stage reruns regardless of DVC;
    #    the output is unchanged, so DVC's hashes keep everything downstream a cache hit
    monthly = crawl_and_retrain(root=str(ws), months=["2019-04", "2019-05"], preset="tiny", refresh=["prepare"])
    written = yaml.safe_load((ws / "params.yaml").read_text())
    assert written["crawl"]["months"] == ["2019-04", "2019-05"] and written["pretrain"]["preset"] == "tiny"
    assert written["pretrain"]["init"] == "previous"  # the monthly flow continues the last biLM by default
    assert monthly["init"] == {"used": None, "note": "pretrain did not run"}  # this toy DAG has no pretrain
    assert runs(ws) == ["prepare"]
    assert outcomes(monthly) == {"prepare": "ran", "train": "cached", "evaluate": "cached", "count": "cached"}
    assert dvc_status(ws) == {}

    # every run left a markdown summary; the last one lists its two stages
    with _client() as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["pipeline-summary"])))
    assert len(arts) >= 6
    latest = max(arts, key=lambda a: a.created)
    assert "| prepare | **ran** |" in latest.data and "| count | **cached** |" in latest.data
    assert "**metrics.json**" in latest.data and "| score | 30 |" in latest.data


def test_failed_stage_fails_flow_with_its_own_error_after_retries(prefect_api: str, ws: Path) -> None:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

    from flows.dvc_run import StageFailed
    from flows.pipeline import pipeline

    set_toy(ws, prepare__flaky=1, train__lr=-1)  # prepare fails once (then retried), train always
    set_flows(ws, retries={"prepare": 2}, retry_delay_s=0.2)
    state = pipeline(root=str(ws), return_state=True)
    assert state.is_failed()
    with pytest.raises(StageFailed, match=r"(?s)stage 'train' failed.*toy\.yaml: train\.lr must be > 0 \(got -1\)"):
        state.result()
    assert runs(ws) == ["prepare", "prepare", "train"]  # retried prepare; nothing after train
    status = dvc_status(ws)
    assert "prepare" not in status and "train" in status

    # logs and task-run states reach the server asynchronously (batched logs, events): wait for them
    this_run = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    stderr_line = "train | toy: train: toy.yaml: train.lr must be > 0 (got -1)"  # the stage's own stderr
    with _client() as client:
        def settled():
            run_filter = LogFilterFlowRunId(any_=[state.state_details.flow_run_id])
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=run_filter))
            tasks = {t.name: t for t in client.read_task_runs(flow_run_filter=this_run)}
            ok = (any(stderr_line in log.message for log in logs) and {"prepare", "train"} <= set(tasks)
                  and tasks["prepare"].state.is_completed() and tasks["train"].state.is_failed())
            return tasks if ok else None

        tasks = eventually(settled, "the failed run's logs and task states")
        flow_run = client.read_flow_runs(flow_run_filter=this_run)[0]
        arts = client.read_artifacts(flow_run_filter=this_run)
    assert flow_run.state.is_failed()
    assert tasks["prepare"].run_count == 2 and "evaluate" not in tasks
    summary = next(a for a in arts if a.key == "pipeline-summary").data
    assert "failed" in summary and "| evaluate | **not run** |" in summary and "train.lr must be > 0" in summary


def test_flow_rejects_unknown_stage_names_before_running(prefect_api: str, ws: Path) -> None:
    from elmo.errors import StageError
    from flows.pipeline import pipeline

    set_flows(ws, retries={"crawl": 3})  # the real project's stage, absent here
    with pytest.raises(StageError, match=r"params.yaml: flows.retries names no stage of dvc.yaml: crawl"):
        pipeline(root=str(ws))
    with pytest.raises(StageError, match=r"no stage named 'trian'"):
        pipeline(root=str(ws), targets=["trian"])
    assert runs(ws) == []


def test_stage_shards_fan_out_over_dask_and_dvc_records_them(prefect_api: str, ws: Path, monkeypatch) -> None:
    from flows.pipeline import pipeline

    monkeypatch.syspath_prepend(str(ws))  # the toy's stage module, for the in-process Dask workers
    set_flows(ws, dask={"enabled": True, "stages": {"count": "toystages"}, "n_workers": 1, "processes": False})
    result = pipeline(root=str(ws), targets=["count"])
    assert sorted(runs(ws)) == ["count-shard-0", "count-shard-1", "count-shard-2", "prepare"]  # no `count` cmd
    assert outcomes(result) == {"prepare": "ran", "count": "ran"}
    assert "fanned out over Dask (3 shards)" in result["stages"][1]["action"]
    assert not {"prepare", "count"} & set(dvc_status(ws))  # dvc commit recorded deps, params and outs
    fanned = yaml.safe_load((ws / "dvc.lock").read_text())["stages"]["count"]["outs"]
    # the stage's own command produces the same bytes
    _dvc(ws, "repro", "--single-item", "--force", "count")
    assert yaml.safe_load((ws / "dvc.lock").read_text())["stages"]["count"]["outs"] == fanned
    runs(ws)
    again = pipeline(root=str(ws), targets=["count"])
    assert runs(ws) == [] and outcomes(again) == {"prepare": "cached", "count": "cached"}


def test_cli_runs_the_flow_once_by_hand(prefect_api: str, ws: Path) -> None:
    """`python -m flows run` as the README shows it: targets, a JSON report, exit 0."""
    out = subprocess.run([sys.executable, "-m", "flows", "run", "--root", str(ws), "--api-url", prefect_api,
                          "--target", "train"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert outcomes(json.loads(out.stdout)) == {"prepare": "ran", "train": "ran"}
    assert runs(ws) == ["prepare", "train"]


def test_served_deployments_schedule_run_and_stop_cleanly(prefect_api: str, ws: Path, tmp_path: Path) -> None:
    from prefect.deployments import run_deployment

    env = {**os.environ, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    out = open(tmp_path / "serve.out", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "flows", "serve", "--root", str(ws), "--api-url", prefect_api],
                            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        with _client() as client:
            while True:
                deps = {d.name: d for d in client.read_deployments() if d.parameters.get("root") == str(ws)}
                if len(deps) == 2:
                    break
                assert proc.poll() is None, (tmp_path / "serve.out").read_text(errors="replace")
                assert time.monotonic() < deadline, "the deployments never appeared"
                time.sleep(1)
            flows_by_id = {f.id: f.name for f in client.read_flows()}
        listed = {f"{flows_by_id[d.flow_id]}/{name}": d for name, d in deps.items()}
        assert set(listed) == {"pipeline/nightly", "crawl-and-retrain/monthly"}
        nightly, monthly = listed["pipeline/nightly"], listed["crawl-and-retrain/monthly"]
        assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in nightly.schedules] == [
            ("0 2 * * *", "Asia/Seoul", True)]
        assert [s.schedule.cron for s in monthly.schedules] == ["0 3 1 * *"]
        assert monthly.parameters == {"root": str(ws), "months": None, "preset": None, "init": "previous"}

        flow_run = run_deployment(nightly.id, parameters={"targets": ["prepare"]}, timeout=240, poll_interval=1)
        assert flow_run.state.is_completed(), flow_run.state
        assert runs(ws) == ["prepare"] and "prepare" not in dvc_status(ws)
    finally:
        t0 = time.monotonic()
        rc = stop_process(proc, signal.SIGTERM, STOP_S)
        out.close()
    log = (tmp_path / "serve.out").read_text(errors="replace")
    assert rc == 0, f"serve exited with {rc}:\n{log[-3000:]}"
    assert time.monotonic() - t0 < STOP_S and "Traceback" not in log
    with _client() as client:  # schedules paused on shutdown: nothing piles up for a gone runner
        assert client.read_deployment(nightly.id).paused and client.read_deployment(monthly.id).paused


def test_deploy_registers_deployments_with_a_work_pool(prefect_api: str, ws: Path) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate

    from elmo.params import parse_params
    from flows.deployments import deploy

    with _client() as client:
        client.create_work_pool(WorkPoolCreate(name="toy-pool", type="process"))
    ids = deploy(ws, parse_params({}).flows, "toy-pool")
    with _client() as client:
        deps = [client.read_deployment(i) for i in ids]
    assert sorted(d.name for d in deps) == ["monthly", "nightly"]
    assert {d.work_pool_name for d in deps} == {"toy-pool"}
    assert all(d.entrypoint.startswith("flows/pipeline.py:") and d.parameters["root"] == str(ws) for d in deps)
