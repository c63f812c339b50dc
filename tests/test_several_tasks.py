"""Several tasks side by side (README "Several tasks"): the project's real dvc.yaml on a tiny workspace
with two tasks, a KLUE-layout YNAT fixture and the TSV sentiment set. One `dvc repro` makes both
classifiers, their metrics and plots, and registers each with its own champion; `elmo predict --task`
answers for each; changing one task's params makes `dvc status` show only that task's stages, and the
next `dvc repro` reruns only those.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from elmo.dvcrepo import stage_order
from helpers.tiny_pipeline import copy_pipeline, tiny_params
from test_finetune import klue_files

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]

FIXTURE = Path(__file__).parent / "fixtures" / "sentiment"
SENTIMENT = {"source": "src/sentiment", "train_file": "train.tsv", "dev_file": "dev.tsv", "format": "tsv",
             "text_field": "document", "label_field": "label", "id_field": "id"}


GIT_ENV = {"GIT_AUTHOR_NAME": "elmo-test", "GIT_AUTHOR_EMAIL": "elmo-test@localhost",
           "GIT_COMMITTER_NAME": "elmo-test", "GIT_COMMITTER_EMAIL": "elmo-test@localhost"}


def sh(root: Path, *args: str, stdout_only: bool = False) -> str:
    """Run a command; its stdout and stderr (``stdout_only``: stdout alone, e.g. a --json report)."""
    env = {**os.environ, **GIT_ENV, "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{' '.join(args)}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout if stdout_only else r.stdout + r.stderr


def dvc(root: Path, *args: str) -> str:
    return sh(root, sys.executable, "-m", "dvc", *args)


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory, repo_root: Path, shared_data: Path) -> dict:
    root = tmp_path_factory.mktemp("several_tasks")
    params = tiny_params(repo_root, shared_data / "petitions_archive", root / "src" / "ynat", ["2017-08"])
    params["finetune"]["tasks"]["sentiment"] = {**SENTIMENT, "train": {"max_epochs": 1}}  # an override
    copy_pipeline(repo_root, root, params)
    klue_files(root / "src" / "ynat")
    shutil.copytree(FIXTURE, root / "src" / "sentiment")
    (root / ".gitignore").write_text((repo_root / ".gitignore").read_text())
    sh(root, "git", "init", "-q", "-b", "main")
    dvc(root, "init", "-q")
    out = dvc(root, "repro")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-q", "-m", "run 1: two tasks")
    return {"root": root, "params": params, "repro": out}


def test_several_tasks_one_repro_makes_both_models_metrics_and_plots(two_tasks) -> None:
    root, out = two_tasks["root"], two_tasks["repro"]
    for name in ("ynat", "sentiment"):
        assert f"Running stage 'fetch_task@{name}'" in out and f"Running stage 'finetune@{name}'" in out
        assert (root / f"models/{name}/config.json").is_file()
        metrics = json.loads((root / f"metrics/finetune/{name}.json").read_text(encoding="utf-8"))
        assert 0 <= metrics["macro_f1"] <= 1
        for png in ("history.png", "confusion.png"):  # the plots as images: no browser, no internet
            assert (root / f"plots/finetune/{name}/{png}").read_bytes()[:4] == b"\x89PNG"
    # the per-task override: sentiment trains one epoch, ynat the shared two
    assert json.loads((root / "metrics/finetune/sentiment.json").read_text())["epochs"] == 1
    assert json.loads((root / "metrics/finetune/ynat.json").read_text())["epochs"] == 2
    shown = json.dumps(json.loads(dvc(root, "metrics", "show", "--json")))
    assert "metrics/finetune/ynat.json" in shown and "metrics/finetune/sentiment.json" in shown
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert {"fetch_task@ynat", "finetune@ynat", "fetch_task@sentiment", "finetune@sentiment"} <= set(lock)
    # the Prefect flows read this order from DVC: each task's stages by their name@key
    order = stage_order(root)
    assert order.index("pretrain") < order.index("finetune@sentiment") < order.index("register")
    assert order.index("fetch_task@ynat") < order.index("finetune@ynat") < order.index("register")
    # dvc plots show: per task, the PNG curves are in the page as images (they render without internet)
    dvc(root, "plots", "show", "-o", "plots_html")
    page = (root / "plots_html" / "index.html").read_text(encoding="utf-8")
    assert "<img" in page and all(f"plots/finetune/{n}/history.png" in page for n in ("ynat", "sentiment"))


def test_several_tasks_each_registered_with_its_own_champion(two_tasks) -> None:
    root = two_tasks["root"]
    report = json.loads((root / "metrics/register.json").read_text(encoding="utf-8"))["models"]
    assert report["ynat"]["name"] == "elmo-ynat" and report["sentiment"]["name"] == "elmo-sentiment"
    for key in ("ynat", "sentiment", "bilm"):
        assert report[key]["version"] == 1 and report[key]["champion"] == 1
    rows = json.loads(sh(root, "elmo", "rollback", "--list", "--json", stdout_only=True))
    champions = {r["model"]: r["version"] for r in rows if r["champion"]}
    assert champions == {"elmo-bilm": 1, "elmo-ynat": 1, "elmo-sentiment": 1}


def test_several_tasks_predict_answers_per_task(two_tasks) -> None:
    root = two_tasks["root"]
    sentiment = json.loads(sh(root, "elmo", "predict", "--task", "sentiment", "--json", "배송이 빠르고 아주 만족한다",
                              stdout_only=True))
    assert sentiment[0]["label"] in {"0", "1", "2"} and set(sentiment[0]["probs"]) == {"0", "1", "2"}
    ynat = json.loads(sh(root, "elmo", "predict", "--task", "ynat", "--json", "손흥민 시즌 10호 골", stdout_only=True))
    assert ynat[0]["label"] in ynat[0]["probs"] and set(ynat[0]["probs"]) == {"IT과학", "스포츠", "정치"}  # the fixture
    r = subprocess.run(["elmo", "predict", "--task", "nope", "x"], cwd=root, capture_output=True, text=True,
                       env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    assert r.returncode == 2 and "no task 'nope'" in r.stderr


def test_several_tasks_a_change_to_one_task_reruns_only_its_stages(two_tasks) -> None:
    root, params = two_tasks["root"], two_tasks["params"]
    assert "up to date" in dvc(root, "status")
    run_1 = (root / "metrics/finetune/sentiment.json").read_text(encoding="utf-8")
    params["finetune"]["tasks"]["sentiment"]["model"] = {"hidden": 6}  # another override: another model
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    changed = set(json.loads(dvc(root, "status", "--json")))
    assert changed and all(s.endswith("@sentiment") for s in changed), changed
    assert "finetune@sentiment" in changed
    out = dvc(root, "repro")
    assert "Running stage 'finetune@sentiment'" in out and "Running stage 'finetune@ynat'" not in out
    assert "Running stage 'fetch_task@ynat'" not in out and "Running stage 'pretrain'" not in out
    assert (root / "metrics/finetune/sentiment.json").read_text(encoding="utf-8") != run_1
    report = json.loads((root / "metrics/register.json").read_text(encoding="utf-8"))["models"]
    assert report["sentiment"]["version"] == 2 and report["ynat"]["version"] == 1 and not report["ynat"]["new"]
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-q", "-m", "run 2: sentiment retrained")
    # one task's model goes back on its own: elmo-sentiment v1's files and champion, ynat's untouched
    sh(root, "elmo", "rollback", "--to", "elmo-sentiment:1")
    assert (root / "metrics/finetune/sentiment.json").read_text(encoding="utf-8") == run_1
    rows = json.loads(sh(root, "elmo", "rollback", "--list", "--json", stdout_only=True))
    assert {r["model"]: r["version"] for r in rows if r["champion"]}["elmo-sentiment"] == 1
