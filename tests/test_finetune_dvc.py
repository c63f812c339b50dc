"""DVC behaviour of fetch_task and finetune (in a throw-away DVC workspace, tiny random biLM)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_finetune import klue_files
from tiny_elmo import make_bilm_dir

STAGES = ("fetch_task", "finetune")


def test_dvc_stages_declare_their_inputs(repo_root: Path) -> None:
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    fetch, fine = stages["fetch_task"]["do"], stages["finetune"]["do"]  # one stage per task (foreach)
    assert fetch["params"] == ["finetune.tasks.${key}"]  # its own task's keys only
    assert "data/task/${key}" in fine["deps"]  # the task's name names its data
    assert fetch["outs"] == ["data/task/${key}"]
    assert "${finetune.bilm_dir}" in fine["deps"]
    assert "finetune.tasks.${key}" in fine["params"] and "finetune" not in fine["params"]
    # every shared finetune setting but `tasks` (and the per-task paths params.yaml leaves out)
    shared = {k for k in params["finetune"] if k != "tasks"}
    listed = {p.removeprefix("finetune.") for p in fine["params"] if p.startswith("finetune.")}
    assert listed == shared | {"tasks.${key}"}
    assert params["finetune"]["bilm_dir"] == params["pretrain"]["out_dir"]  # finetune reads what pretrain writes
    for stage in (fetch, fine):
        for dep in stage["deps"]:
            if "${" not in dep:  # templated paths are data; the rest is code that must exist
                assert (repo_root / dep).exists(), dep


def _dvc(ws: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=ws, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


@pytest.mark.slow
def test_repro_finetune_then_only_what_changed(tmp_path: Path, repo_root: Path) -> None:
    from elmo.text import Tokenizer

    ws = tmp_path / "ws"
    ws.mkdir()
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    (ws / "dvc.yaml").write_text(yaml.safe_dump({"stages": {s: stages[s] for s in STAGES}}, sort_keys=False))
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    f = params["finetune"]
    f["tasks"]["ynat"]["source"] = "src"
    f["model"].update(word_dim=8, hidden=8, word_min_count=1)
    f["train"].update(batch_size=4, max_epochs=2, patience=2, threads=1)
    f["tfidf"].update(min_df=1)
    f["compare"] = ["tfidf_lr", "elmo"]
    (ws / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False))
    for s in STAGES:
        for dep in stages[s]["do"]["deps"]:
            if "${" in dep or (ws / dep).exists():  # data, not code; the two stages share code deps
                continue
            (ws / dep).parent.mkdir(parents=True, exist_ok=True)
            if (repo_root / dep).is_dir():
                shutil.copytree(repo_root / dep, ws / dep, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(repo_root / dep, ws / dep)
    klue_files(ws / "src")
    make_bilm_dir(ws / "models", Tokenizer("mecab"))  # -> ws/models/bilm (+ ws/models/vocab)
    _dvc(ws, "init", "--no-scm", "-q")

    out = _dvc(ws, "repro", "finetune@ynat")
    assert "Running stage 'fetch_task@ynat'" in out and "Running stage 'finetune@ynat'" in out
    assert (ws / "models/ynat/config.json").is_file() and (ws / "plots/finetune/ynat/confusion.png").is_file()
    shown = json.loads(_dvc(ws, "metrics", "show", "--json"))
    assert "metrics/finetune/ynat.json" in json.dumps(shown)

    out = _dvc(ws, "repro", "finetune@ynat")
    assert "Running stage" not in out

    f["train"]["max_epochs"] = 1  # a finetune param: only finetune reruns, and reads the layer cache
    (ws / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False))
    out = _dvc(ws, "repro", "finetune@ynat")
    assert "Running stage 'finetune@ynat'" in out and "Running stage 'fetch_task@ynat'" not in out
    assert "read from" in out
    assert json.loads((ws / "metrics/finetune/ynat.json").read_text())["epochs"] == 1
