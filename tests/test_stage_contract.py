"""The stage contract (ARCHITECTURE.md, elmo/log.py): `elmo <stage>` prints only its JSON report on
stdout, so `elmo <stage> | python -m json.tool` works for every stage; messages go to stderr.

Every stage runs once, in pipeline order, as a user runs it from a shell, on a small workspace: one
mirror month, the tiny pretrain preset (its DDP worker processes included: they inherit stdout), a
tiny KLUE-layout task. register needs the dvc.lock of those runs: `dvc commit` records it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.tiny_pipeline import copy_pipeline, tiny_params
from test_finetune import klue_files

pytestmark = pytest.mark.timeout(900)

STAGES = ["crawl", "clean", "tokenize", "vocab", "pretrain", "fetch_task", "finetune", "register"]
# a line each stage writes to stderr (the human messages did not vanish: they moved)
ON_STDERR = {"pretrain": "pretrain: preset tiny", "finetune": "model selection on a held-out slice",
             "register": "registered version 1"}


def sh(root: Path, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{' '.join(args)}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, repo_root: Path, shared_data: Path) -> Path:
    root = tmp_path_factory.mktemp("contract")
    copy_pipeline(repo_root, root, tiny_params(repo_root, shared_data / "petitions_archive", root / "src", ["2017-08"]))
    klue_files(root / "src")
    sh(root, "git", "init", "-q")
    sh(root, sys.executable, "-m", "dvc", "init", "-q")
    return root


@pytest.fixture(scope="module")
def reports(workspace: Path) -> dict[str, subprocess.CompletedProcess]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = {}
    for stage in STAGES:
        if stage == "register":  # register reads what dvc.lock says the stages produced
            sh(workspace, sys.executable, "-m", "dvc", "commit", "-f", *STAGES[:-1])
        out[stage] = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"elmo {stage} | {sys.executable} -m json.tool"],
            cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    return out


@pytest.mark.parametrize("stage", STAGES)
def test_stage_stdout_is_its_json_report_only(reports, stage: str) -> None:
    r = reports[stage]
    assert r.returncode == 0, f"elmo {stage} | python -m json.tool failed:\n{r.stderr[-3000:]}"
    report = json.loads(r.stdout)  # json.tool re-printed it: stdout held one JSON document, nothing else
    assert isinstance(report, dict) and report
    if stage in ON_STDERR:
        assert ON_STDERR[stage] in r.stderr


@pytest.mark.parametrize("stage", STAGES)
def test_report_shape_of_every_stage(reports, stage: str, workspace: Path) -> None:
    """Each stage's real report has the one shape (elmo.stages.check_report: no stray, no missing key),
    and names its outputs and metrics file relative to the workspace, as params.yaml does."""
    from elmo.stages import check_report

    assert reports[stage].returncode == 0, reports[stage].stderr[-3000:]
    report = check_report(json.loads(reports[stage].stdout))
    assert report["stage"] == stage
    for path in [*report["outputs"].values(), *([report["metrics_file"]] if report["metrics_file"] else [])]:
        assert not Path(path).is_absolute() and (workspace / path).exists(), path


def test_messages_reach_stderr_through_one_logger(capsys) -> None:
    import logging

    from elmo.log import configure, get_logger

    configure()
    configure()  # idempotent: one handler, not two lines per message
    get_logger("finetune").info("a message for people")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("a message for people") == 1
    assert not logging.getLogger("elmo").propagate


def test_stray_prints_and_child_processes_cannot_reach_stdout(capfd) -> None:
    from elmo.log import stdout_to_stderr

    with stdout_to_stderr():
        print("from python")
        subprocess.run(["echo", "from a child process"], check=True)
    print("the report")
    captured = capfd.readouterr()
    assert captured.out == "the report\n"
    assert "from python" in captured.err and "from a child process" in captured.err


def test_registered_versions_lead_back_to_their_training_runs(reports, workspace: Path) -> None:
    """Each version's source run is the stage run that trained it, holding that model's metrics only."""
    from elmo import tracking
    from elmo.params import load_params

    assert reports["register"].returncode == 0, reports["register"].stderr[-3000:]
    models = json.loads(reports["register"].stdout)["models"]
    params = load_params(workspace / "params.yaml")
    client = tracking.registry_client(params.mlflow, workspace, create=False)
    versions = {k: client.get_model_version(models[k]["name"], str(models[k]["version"])) for k in ("bilm", "ynat")}
    bilm, task = (client.get_run(versions[k].run_id) for k in ("bilm", "ynat"))
    assert bilm.data.tags["elmo.stage"] == "pretrain" and task.data.tags["elmo.stage"] == "finetune"
    assert bilm.info.status == task.info.status == "FINISHED"
    assert any("ppl" in k for k in bilm.data.metrics) and not any("macro_f1" in k for k in bilm.data.metrics)
    assert "macro_f1" in task.data.metrics and not any("ppl" in k for k in task.data.metrics)
    assert "run_id" not in json.dumps(models)  # the report stays the same for the same models
