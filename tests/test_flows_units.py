"""flows/ without a Prefect server: params, the DAG from dvc.yaml, DVC hashes, lock, summary."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from elmo.dvcrepo import stage_order, stage_state
from elmo.errors import StageError
from elmo.params import ParamsError, parse_params
from helpers.toy_workspace import make_toy_workspace


@pytest.fixture(scope="module", autouse=True)
def prefect_home(tmp_path_factory):
    """Prefect (imported by some of these tests) keeps its home in a tmp dir, not the project's."""
    old = os.environ.get("PREFECT_HOME")
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    yield
    if old is None:
        os.environ.pop("PREFECT_HOME", None)
    else:
        os.environ["PREFECT_HOME"] = old


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return make_toy_workspace(tmp_path_factory.mktemp("toy") / "ws")


def test_flows_params_defaults_and_errors() -> None:
    p = parse_params({}).flows
    assert p.retries == {"crawl": 3} and not p.dask.enabled and p.timezone == "Asia/Seoul"
    for bad, key in [
        ({"nightly_cron": "every night"}, "flows.nightly_cron"),
        ({"timezone": "Mars/Olympus"}, "flows.timezone"),
        ({"retries": {"crawl": -1}}, "flows.retries"),
        ({"dask": {"stages": {"tokenize": "not a module"}}}, "flows.dask.stages"),
        ({"dask": {"workers": 3}}, "flows.dask.workers: unknown key"),
        ({"mlflow_ui": "localhost:5000"}, "flows.mlflow_ui"),
    ]:
        with pytest.raises(ParamsError, match=key):
            parse_params({"flows": bad})


def test_repository_params_name_real_stages(repo_root: Path) -> None:
    """flows.retries and flows.dask.stages in params.yaml name stages that dvc.yaml has."""
    from elmo.params import load_params

    p = load_params(repo_root / "params.yaml").flows
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    assert set(p.retries) <= set(stages), set(p.retries) - set(stages)
    assert set(p.dask.stages) <= set(stages), set(p.dask.stages) - set(stages)


def test_tokenize_stage_exposes_the_shard_protocol() -> None:
    """The tokenize stage can be fanned out (its bytes equal `run`'s: tests/test_tokenize_stage.py)."""
    from elmo.params.flows import DaskParams
    from flows.fanout import fanout_spec, shard_module

    assert fanout_spec("tokenize", DaskParams()) is None  # disabled by default: dvc repro runs it
    spec = fanout_spec("tokenize", DaskParams(enabled=True))
    assert spec["module"] == "elmo.stages.tokenize" and spec["dask"]["enabled"]
    with pytest.raises(StageError, match=r"flows.dask.stages.vocab: elmo.stages.vocab does not expose plan_shards"):
        shard_module("vocab", "elmo.stages.vocab")
    with pytest.raises(StageError, match=r"flows.dask.stages.x: cannot import 'elmo.nope'"):
        shard_module("x", "elmo.nope")


def test_stage_order_is_dvc_yaml_dag(toy: Path) -> None:
    assert stage_order(toy) == ["prepare", "train", "evaluate", "count"]
    assert stage_order(toy, ["evaluate"]) == ["prepare", "train", "evaluate"]
    assert stage_order(toy, ["count"]) == ["prepare", "count"]
    with pytest.raises(StageError, match=r"no stage named 'nope' \(stages: prepare, train, evaluate, count\)"):
        stage_order(toy, ["nope"])


def test_stage_order_follows_dependencies_not_file_order(tmp_path: Path) -> None:
    """A stage listed before the stage it depends on still runs after it; new stages just appear."""
    ws = make_toy_workspace(tmp_path / "ws")
    dvc = yaml.safe_load((ws / "dvc.yaml").read_text())
    report = {"cmd": "python -c \"open('report.txt','w').write(open('metrics.json').read())\"",
              "deps": ["metrics.json"], "outs": ["report.txt"]}
    dvc["stages"] = {"report": report, **dvc["stages"]}
    (ws / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    order = stage_order(ws)
    assert order.index("report") > order.index("evaluate") > order.index("train") > order.index("prepare")
    assert sorted(order) == ["count", "evaluate", "prepare", "report", "train"]


def test_stage_state_key_exists_only_when_dvc_is_clean(tmp_path: Path) -> None:
    import subprocess
    import sys

    ws = make_toy_workspace(tmp_path / "ws")
    state = stage_state(ws, "prepare")
    assert not state.up_to_date and state.key is None and state.changes  # never ran: no lock entry
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-q", "prepare"], cwd=ws, check=True, timeout=120)
    clean = stage_state(ws, "prepare")
    assert clean.up_to_date and clean.key and clean.key.startswith("dvc-stage-")
    assert clean.outs["data/prepared.txt"] == clean.lock["outs"][0]["md5"]
    assert clean.key == stage_state(ws, "prepare").key  # stable
    (ws / "data/prepared.txt").write_text("tampered\n")  # an output changed behind DVC's back
    dirty = stage_state(ws, "prepare")
    assert not dirty.up_to_date and dirty.key is None and "changed outs" in dirty.describe()


def test_workspace_lock_serialises_runs(tmp_path: Path) -> None:
    from flows.workspace import workspace_lock

    (tmp_path / ".dvc").mkdir()
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with workspace_lock(tmp_path, timeout_s=5):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(10)
    t0 = time.monotonic()
    with pytest.raises(StageError, match=r"another pipeline run \(pid \d+ .*\) still holds this workspace"):
        with workspace_lock(tmp_path, timeout_s=0.3, poll_s=0.05):
            pass
    assert time.monotonic() - t0 < 5
    release.set()
    t.join(10)
    with workspace_lock(tmp_path, timeout_s=1):  # free again
        pass


def test_summary_markdown_lists_stages_metrics_and_error() -> None:
    from flows import summary

    results = [
        {"stage": "clean", "outcome": "cached", "action": "cache hit", "seconds": None, "key": "dvc-stage-" + "a" * 64},
        {"stage": "pretrain", "outcome": "failed", "action": "stage 'pretrain' failed", "seconds": None, "key": None},
        {"stage": "finetune", "outcome": "not run", "action": "pretrain failed", "seconds": None, "key": None},
    ]
    diff = {"metrics/finetune.json": {"macro_f1": {"old": 0.81, "new": 0.83, "diff": 0.02}},
            "metrics/clean.json": {"kept": {"old": 100, "new": 100}}}
    runs = [{"stage": "pretrain", "run_id": "abc", "name": "pretrain", "status": "FINISHED", "fresh": True,
             "url": "http://127.0.0.1:5000/#/experiments/1/runs/abc"}]
    md = summary.render(root=Path("/ws"), flow_run_name="brave-fox",
                        started=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                        seconds=12.0, results=results, error="stage 'pretrain' failed: boom", metrics_diff=diff,
                        metrics_note=None, runs=runs)
    assert "# Pipeline run `brave-fox` failed" in md and "1 cached, 1 failed, 1 not run" in md
    assert "| clean | **cached** |" in md and "`aaaaaaaaaaaa`" in md
    assert "| macro_f1 | 0.83 | 0.81 | 0.02 |" in md
    assert md.index("metrics/clean.json") < md.index("metrics/finetune.json")
    assert "boom" in md and "[pretrain: pretrain](http://127.0.0.1:5000/#/experiments/1/runs/abc)" in md
    assert summary.artifact_key("MLflow pretrain_run") == "mlflow-pretrain-run"


def test_summary_shows_each_models_champion_and_what_moved(tmp_path: Path) -> None:
    """The register report (what `elmo register` writes) as a table: version, champion, the move."""
    from flows import summary

    params = parse_params({})
    assert summary.registry(params, tmp_path) is None
    report = {"alias": "champion", "git_commit": "c0ffee", "models": {
        "bilm": {"name": "elmo-bilm", "version": 2, "new": False, "promoted": False, "champion": 2,
                 "previous_champion": 2},
        "ynat": {"name": "elmo-ynat", "version": 4, "new": True, "promoted": True, "champion": 4,
                 "previous_champion": 3}}}
    (tmp_path / "metrics").mkdir()
    (tmp_path / params.register.report).write_text(json.dumps(report))
    assert summary.registry(params, tmp_path) == report
    ran = [{"stage": "register", "outcome": "ran", "action": "", "seconds": 1.0, "key": None}]
    md = summary.render(root=tmp_path, flow_run_name="r", started=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                        seconds=1.0, results=ran, error=None, metrics_diff={}, metrics_note=None, runs=[],
                        registry=summary.registry(params, tmp_path))
    assert "| bilm | elmo-bilm | v2 (existing) | v2 | no |" in md
    assert "| ynat | elmo-ynat | v4 (new) | v4 | **v3 → v4** |" in md
    assert "did not run this time" not in md
    first = {"models": {"ynat": {**report["models"]["ynat"], "version": 1, "champion": 1, "previous_champion": None}}}
    cached = [{**ran[0], "outcome": "cached"}]
    table = summary.registry_markdown(first, cached)
    assert "| v1 | **→ v1** (first) |" in table and "did not run this time" in table
    (tmp_path / params.register.report).write_text("{not json")
    assert summary.registry(params, tmp_path) is None
    assert "_Nothing registered yet._" in summary.registry_markdown(None, [])


def test_summary_has_one_row_per_task_of_several_tasks() -> None:
    """finetune@<name> stages (dvc.yaml's foreach) become one row each, with the task's registered model."""
    from flows import summary

    results = [{"stage": s, "outcome": o} for s, o in [("pretrain", "cached"), ("fetch_task@ynat", "cached"),
               ("finetune@ynat", "cached"), ("fetch_task@sentiment", "ran"), ("finetune@sentiment", "ran"),
               ("register", "ran")]]
    report = {"models": {"ynat": {"name": "elmo-ynat", "version": 1, "champion": 1, "metric": "macro_f1",
                                  "value": 0.8}, "sentiment": {"name": "elmo-sentiment", "version": 2,
                                                               "champion": 1, "metric": "macro_f1", "value": 0.5}}}
    table = summary.tasks_markdown(results, report)
    assert "| ynat | cached | cached | macro_f1 0.8 | elmo-ynat v1 | v1 |" in table
    assert "| sentiment | ran | ran | macro_f1 0.5 | elmo-sentiment v2 | v1 |" in table
    assert len(table.splitlines()) == 4  # header, rule, two tasks
    assert "| ynat | cached | cached | — | — | — |" in summary.tasks_markdown(results[:3], None)


def test_mlflow_links_point_at_runs_of_this_workspace(tmp_path: Path) -> None:
    """Runs opened through elmo.tracking are found and linked; no store yet means no links."""
    from elmo.params import parse_params
    from elmo.tracking import start_run
    from flows.summary import mlflow_runs

    params = parse_params({"flows": {"mlflow_ui": "http://mlflow.local:5000/"}})
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    assert mlflow_runs(params, tmp_path, since) == []
    with start_run(params.mlflow, tmp_path, stage="pretrain") as run:
        run_id = run.info.run_id
    links = mlflow_runs(params, tmp_path, since)
    assert [(r["stage"], r["run_id"], r["fresh"]) for r in links] == [("pretrain", run_id, True)]
    assert links[0]["url"].startswith("http://mlflow.local:5000/#/experiments/") and links[0]["url"].endswith(run_id)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
    stale = mlflow_runs(params, tmp_path, later)  # nothing new: the latest run per stage, marked so
    assert [(r["run_id"], r["fresh"]) for r in stale] == [(run_id, False)]


def test_cli_names_a_bad_workspace_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.__main__ import app

    out = CliRunner().invoke(app, ["run", "--root", str(tmp_path)])
    assert out.exit_code == 2 and out.output.strip() == f"error: {tmp_path}: not a DVC workspace (no .dvc/ directory)"
    bad = make_toy_workspace(tmp_path / "ws")
    (bad / "params.yaml").write_text("flows:\n  nightly_cron: sometimes\n")
    out = CliRunner().invoke(app, ["serve", "--root", str(bad)])
    assert out.exit_code == 2 and "params.yaml: flows.nightly_cron: expected a cron string" in out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)


def test_stage_output_is_logged_line_by_line_with_progress_bars_thinned() -> None:
    import logging
    import sys

    from flows.dvc_run import stream

    class Capture(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    log = logging.getLogger("test-flows-stream")
    log.setLevel(logging.INFO)
    cap = Capture()
    log.addHandler(cap)
    script = ("import sys\n"
              "for i in range(200): sys.stdout.write(f'work: {i}%\\r')\n"
              "print('done 한국어'); sys.stdout.flush()\n"
              "sys.stderr.write('\\nerror: bad thing\\n'); sys.exit(3)\n")
    rc, lines = stream([sys.executable, "-c", script], ".", "toy", log, progress_every_s=1000)
    assert rc == 3 and lines == ["done 한국어", "error: bad thing"]
    assert cap.lines == ["toy | work: 0%", "toy | work: 199%", "toy | done 한국어", "toy | error: bad thing"]
