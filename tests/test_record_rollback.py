"""Rollback across scheduled runs, end to end (issue: schedules and rollback compose).

The monthly deployment's flow (``crawl-and-retrain``) runs twice through Prefect's test harness on
the project's real pipeline made tiny: run 1 on one mirror month, run 2 after the archive gains a
month. Each successful run records itself (a commit + ``dvc push``). Then, in a fresh ``git clone``
of that repository (the DVC remote and the MLflow registry are shared, as a team's would be),
``elmo rollback --to 1`` restores every DVC output byte for byte as run 1 made it and the aliases
as run 1 recorded them, and ``elmo rollback --to 2`` goes forward again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.tiny_pipeline import copy_pipeline, mirror_archive, tiny_params
from test_finetune import klue_files

pytestmark = [pytest.mark.timeout(1200), pytest.mark.slow]

GIT_ENV = {"GIT_AUTHOR_NAME": "elmo-test", "GIT_AUTHOR_EMAIL": "elmo-test@localhost",
           "GIT_COMMITTER_NAME": "elmo-test", "GIT_COMMITTER_EMAIL": "elmo-test@localhost"}


def sh(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{' '.join(args)}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def dvc_outputs(root: Path) -> dict[str, str]:
    """sha256 of every file of every cached DVC output dvc.lock records (data/, models/)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))
    paths = {o["path"] for s in lock["stages"].values() for o in s.get("outs", [])
             if o["path"].startswith(("data/", "models/"))}
    out = {}
    for p in sorted(paths):
        base = root / p
        files = [base] if base.is_file() else sorted(f for f in base.rglob("*") if f.is_file())
        for f in files:
            out[f.relative_to(root).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


# One run of the monthly deployment's flow under Prefect's test harness, in a process of its own: the
# harness's temporary server and Prefect's log/event workers never meet those of other tests.
MONTHLY_RUN = """
import json, sys
from prefect.testing.utilities import prefect_test_harness
from flows.pipeline import crawl_and_retrain
with prefect_test_harness(server_startup_timeout=180):
    result = crawl_and_retrain(root=sys.argv[1])
open(sys.argv[2], "w", encoding="utf-8").write(json.dumps(result, default=str))
"""


def monthly_run(ws: Path, home: Path) -> dict:
    home.mkdir()
    env = {**os.environ, **GIT_ENV, "PREFECT_HOME": str(home),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = home / "result.json"
    r = subprocess.run([sys.executable, "-c", MONTHLY_RUN, str(ws), str(out)], cwd=ws, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and out.exists(), f"monthly flow run failed ({r.returncode}):\n{r.stderr[-4000:]}"
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def scheduled_runs(tmp_path_factory, repo_root: Path, shared_data: Path):
    base = tmp_path_factory.mktemp("record-e2e")
    ws, remote, registry = base / "ws", base / "dvc-remote", base / "registry"
    for d in (ws, remote, registry):
        d.mkdir()
    archive = mirror_archive(shared_data, base / "archive", ["2017-08"])
    params = tiny_params(repo_root, archive, base / "task", months=None)
    params["mlflow"].update(tracking_uri=f"sqlite:///{registry / 'mlflow.db'}",
                            artifact_root=str(registry / "artifacts"))
    params["allow_paths_outside_workspace"] = True  # the shared registry lives beside the clones
    # the biLM's deciding metric: the tokens it was trained on, so that run 2 (one more month) is a
    # certain champion move; perplexities of 60-step models would make the move a coin toss
    params["register"]["models"]["bilm"].update(metric="train_split_tokens", higher_is_better=True)
    params["flows"].update(retries={}, lock_timeout_s=60.0)
    copy_pipeline(repo_root, ws, params)
    klue_files(base / "task")
    (ws / ".gitignore").write_text((repo_root / ".gitignore").read_text())
    sh(ws, "git", "init", "-q", "-b", "main")
    sh(ws, sys.executable, "-m", "dvc", "init", "-q")
    sh(ws, sys.executable, "-m", "dvc", "config", "core.analytics", "false")
    sh(ws, sys.executable, "-m", "dvc", "remote", "add", "-d", "store", str(remote))
    sh(ws, "git", "add", "-A")
    sh(ws, "git", "commit", "-q", "-m", "tiny project")

    results, hashes, heads = {}, {}, {}
    for n in (1, 2):
        if n == 2:
            mirror_archive(shared_data, archive, ["2017-08", "2019-04"])  # the archive gains a month
        results[n] = monthly_run(ws, base / f"run{n}")
        hashes[n], heads[n] = dvc_outputs(ws), sh(ws, "git", "rev-parse", "HEAD").strip()
    return {"ws": ws, "base": base, "results": results, "hashes": hashes, "heads": heads}


def aliases(root: Path) -> dict[str, int]:
    rows = json.loads(sh(root, "elmo", "rollback", "--list", "--json"))
    return {r["model"]: r["version"] for r in rows if r["champion"]}


def test_record_each_scheduled_run_is_a_commit_with_its_versions(scheduled_runs) -> None:
    ws, heads, results = scheduled_runs["ws"], scheduled_runs["heads"], scheduled_runs["results"]
    for n in (1, 2):
        record = results[n]["record"]
        assert record["recorded"] and record["commit"] == heads[n]
        assert record["push"]["remote"] == "store"
    assert sh(ws, "git", "rev-parse", f"{heads[2]}~1").strip() == heads[1]
    msg = sh(ws, "git", "log", "-1", "--format=%B", heads[2])
    assert msg.startswith("elmo run: flow run ") and "Stages run: crawl, clean, tokenize, vocab, pretrain" in msg
    assert "elmo-bilm v2 (new; champion moved v1 -> v2)" in msg
    stat = sh(ws, "git", "log", "-1", "--stat", "--format=")
    assert "dvc.lock" in stat and "metrics/register.json" in stat
    assert "in sync" in sh(ws, sys.executable, "-m", "dvc", "status", "-c")
    assert sh(ws, "git", "status", "--porcelain", "--untracked-files=no") == ""
    rows = json.loads(sh(ws, "elmo", "rollback", "--list", "--json"))
    made = {(r["model"], r["version"]): r["data_commit"] for r in rows}
    assert made[("elmo-bilm", 1)] == heads[1] and made[("elmo-bilm", 2)] == heads[2]
    assert made[("elmo-ynat", 1)] == heads[1] and made[("elmo-ynat", 2)] == heads[2]
    assert scheduled_runs["hashes"][1] != scheduled_runs["hashes"][2]


def test_record_rollback_from_a_fresh_clone_restores_run_1_and_goes_forward(scheduled_runs) -> None:
    ws, base = scheduled_runs["ws"], scheduled_runs["base"]
    after_run_2 = aliases(ws)
    assert after_run_2["elmo-bilm"] == 2
    clone = base / "clone"
    sh(base, "git", "clone", "-q", str(ws), str(clone))
    assert not (clone / "models").exists()  # nothing but git: the data and models come from the remote
    sh(clone, "elmo", "rollback", "--to", "1")
    assert dvc_outputs(clone) == scheduled_runs["hashes"][1]
    assert aliases(clone) == {"elmo-bilm": 1, "elmo-ynat": 1}
    sh(clone, "elmo", "rollback", "--to", "2")
    assert dvc_outputs(clone) == scheduled_runs["hashes"][2]
    assert aliases(clone) == after_run_2
