"""DVC behaviour of the tokenize and vocab stages (in a throw-away DVC workspace)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from elmo.params.tokenize import RUNTIME_ONLY, TokenizeParams
from test_tokenize_stage import write_petitions

STAGES = ("tokenize", "vocab")


def test_dvc_params_list_every_output_relevant_key(repo_root: Path) -> None:
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    listed = stages["tokenize"]["params"]
    assert sorted(k for k in listed if k.startswith("tokenize.")) == sorted(
        f"tokenize.{k}" for k in TokenizeParams.model_fields if k not in RUNTIME_ONLY)
    # and the normaliser settings the text pipeline saves (text_pipeline.json), which clean also uses
    assert sorted(k for k in listed if not k.startswith("tokenize.")) == [
        "clean.mask_pattern", "clean.mask_placeholder", "clean.moderator_notices"]
    assert stages["vocab"]["params"] == ["vocab"]
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    assert params["tokenize"]["in_parquet"] == params["clean"]["out_parquet"]
    assert params["vocab"]["in_dir"] == params["tokenize"]["out_dir"]
    for stage in STAGES:  # every code dependency exists
        for dep in stages[stage]["deps"]:
            if not dep.startswith("${"):
                assert (repo_root / dep).exists(), dep


def _dvc(ws: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=ws, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def _set(ws: Path, section: str, key: str, value) -> None:
    path = ws / "params.yaml"
    data = yaml.safe_load(path.read_text())
    data[section][key] = value
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


@pytest.mark.slow
def test_repro_runs_once_and_min_count_reruns_only_vocab(tmp_path: Path, repo_root: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    (ws / "dvc.yaml").write_text(yaml.safe_dump({"stages": {s: stages[s] for s in STAGES}}, sort_keys=False))
    shutil.copy(repo_root / "params.yaml", ws / "params.yaml")
    _set(ws, "tokenize", "workers", 1)
    for s in STAGES:
        for dep in stages[s]["deps"]:
            if dep.startswith("${") or (ws / dep).exists():
                continue
            (ws / dep).parent.mkdir(parents=True, exist_ok=True)
            if (repo_root / dep).is_dir():
                shutil.copytree(repo_root / dep, ws / dep, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(repo_root / dep, ws / dep)
    write_petitions(ws / "data/interim/petitions.parquet")
    _dvc(ws, "init", "--no-scm", "-q")
    shutil.copy(repo_root / ".dvcignore", ws / ".dvcignore")

    out = _dvc(ws, "repro", "vocab")
    assert "Running stage 'tokenize'" in out and "Running stage 'vocab'" in out
    assert (ws / "data/processed/arrays/train.tokens.npy").is_file()
    assert (ws / "metrics/vocab.json").is_file() and (ws / "metrics/tokenize.json").is_file()

    out = _dvc(ws, "repro", "vocab")
    assert "Running stage" not in out and "up to date" in out

    _set(ws, "tokenize", "workers", 2)  # runtime only: changes nothing
    out = _dvc(ws, "repro", "vocab")
    assert "Running stage" not in out

    _set(ws, "vocab", "min_count", 2)
    out = _dvc(ws, "repro", "vocab")
    assert "Running stage 'vocab'" in out and "Running stage 'tokenize'" not in out
