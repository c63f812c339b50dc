"""A tiny self-contained DVC + git project for the registry, rollback and serve tests.

Two stages stand in for the real pipeline — ``prepare`` (data whose content depends on
``toy.yaml: data.rows``) and ``train`` (a "model" directory and a metric ``dev.macro_f1`` equal to
``train.quality``) — and a third is the real ``elmo register``, configured through params.yaml's
``register`` section exactly as the project's own one is (names, dirs, dvc.lock stage, metric,
direction, loader). The model is served by ``toy_model.ToyClassifier``, which honours the
interface of ``elmo.task.Classifier``: ``load(dir)`` and ``predict(texts) -> [{label, probs}]``.

The helpers are imported by test_rollback.py and test_serve.py; the test here checks the toy
itself (deterministic outputs that depend on the params), without DVC.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

GIT_ENV = {"GIT_AUTHOR_NAME": "elmo-test", "GIT_AUTHOR_EMAIL": "elmo-test@localhost",
           "GIT_COMMITTER_NAME": "elmo-test", "GIT_COMMITTER_EMAIL": "elmo-test@localhost"}
MODEL_NAME = "toy-ynat"

PREPARE = '''\
import os, yaml
p = yaml.safe_load(open("toy.yaml"))["data"]
os.makedirs("data", exist_ok=True)
with open("data/prepared.txt", "w", encoding="utf-8") as fh:
    fh.write("".join(f"헤드라인 {i}\\n" for i in range(p["rows"])))
'''

TRAIN = '''\
import hashlib, json, os, yaml
p = yaml.safe_load(open("toy.yaml"))["train"]
data = open("data/prepared.txt", "rb").read()
os.makedirs("models/toy", exist_ok=True)
os.makedirs("metrics", exist_ok=True)
model = {"labels": ["스포츠", "경제", "정치"],
         "keywords": {"축구": "스포츠", "골": "스포츠", "코스피": "경제", "금리": "경제", "국회": "정치"},
         "quality": p["quality"], "rows": data.count(b"\\n")}
with open("models/toy/model.json", "w", encoding="utf-8") as fh:
    json.dump(model, fh, ensure_ascii=False, sort_keys=True)
seed = hashlib.sha256(data + repr(p["quality"]).encode()).digest()
with open("models/toy/weights.bin", "wb") as fh:
    fh.write(seed * 64)
with open("metrics/toy.json", "w") as fh:
    json.dump({"dev": {"macro_f1": p["quality"], "accuracy": p["quality"] + 0.05}, "ended_by": "epochs"}, fh,
              sort_keys=True)
'''

# appended to every toy train script: the stage's MLflow run, as pretrain and finetune have, with the
# model's metrics and the model directory's content hash (register logs the model into this run)
TRACK_TRAINING = '''
import json as _json
from pathlib import Path as _Path
from elmo.params import load_params
from elmo.dicts import flatten
from elmo.tracking import log_results, start_run, tag_trained_model
_metrics = _json.loads(_Path("metrics/toy.json").read_text())
with start_run(load_params("params.yaml").mlflow, _Path("."), stage="train"):
    _tags = {"ended_by": _metrics["ended_by"]} if "ended_by" in _metrics else {}
    log_results(flatten(_metrics, numbers_only=True), step=0, tags=_tags, files=[])
    tag_trained_model(_Path("models/toy"))
'''

TOY_MODEL = '''\
"""A stand-in classifier with elmo.task.Classifier's interface: load(dir), predict(texts)."""
import json
import math
from pathlib import Path


class ToyClassifier:
    def __init__(self, config):
        self.labels = config["labels"]
        self.keywords = config["keywords"]

    @classmethod
    def load(cls, model_dir):
        return cls(json.loads((Path(model_dir) / "model.json").read_text(encoding="utf-8")))

    def predict(self, texts):
        out = []
        for text in texts:
            scores = {label: 0.0 for label in self.labels}
            for word, label in self.keywords.items():
                if word in text:
                    scores[label] += 2.0
            z = sum(math.exp(s) for s in scores.values())
            probs = {label: math.exp(s) / z for label, s in scores.items()}
            out.append({"label": max(probs, key=probs.get), "probs": probs})
        return out
'''

DVC_YAML = '''\
stages:
  prepare:
    cmd: python prepare.py
    params:
      - toy.yaml:
          - data
    deps:
      - prepare.py
    outs:
      - data/prepared.txt
  train:
    cmd: python train.py
    params:
      - toy.yaml:
          - train
    deps:
      - train.py
      - data/prepared.txt
    outs:
      - models/toy
    metrics:
      - metrics/toy.json:
          cache: false
  register:
    cmd: elmo register
    params:
      - register
      - mlflow
    deps:
      - ${register.models.toy.model_dir}
      - ${register.models.toy.metrics_file}
    metrics:
      - ${register.report}:
          cache: false
'''


def env() -> dict[str, str]:
    """The test's environment for subprocesses: git identity, this venv's `elmo`/`dvc` first."""
    e = dict(os.environ)
    e.update(GIT_ENV)
    e["PATH"] = str(Path(sys.executable).parent) + os.pathsep + e.get("PATH", "")
    e.pop("MLFLOW_TRACKING_URI", None)
    e["DVC_NO_ANALYTICS"] = "1"
    e["PYTHONUNBUFFERED"] = "1"
    return e


def sh(cwd: Path, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}) in {cwd}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def register_params(registry: Path, model: dict | None = None) -> dict:
    """params.yaml of the toy: a shared registry (absolute paths, as a team's would be) and one model."""
    spec = {
        "name": MODEL_NAME, "model_dir": "models/toy", "dvc_stage": "train",
        "metrics_file": "metrics/toy.json", "metric": "dev.macro_f1", "higher_is_better": True,
        "loader": "toy_model:ToyClassifier", "code_paths": ["toy_model.py"],
        "example": ["국가대표 축구 결승골", "코스피 금리 인상"],
    }
    spec.update(model or {})
    return {
        "allow_paths_outside_workspace": True,  # the shared registry's artifacts live outside the workspace
        "mlflow": {"tracking_uri": f"sqlite:///{registry / 'mlflow.db'}",
                   "artifact_root": str(registry / "artifacts"), "experiment": "toy"},
        "register": {
            "alias": "champion",
            "primary": "toy",
            "report": "metrics/register.json",
            "pip_requirements": ["numpy", "PyYAML"],
            "models": {"toy": spec},
        },
    }


def write_toy_params(root: Path, rows: int, quality: float) -> None:
    (root / "toy.yaml").write_text(yaml.safe_dump({"data": {"rows": rows}, "train": {"quality": quality}}))


def make_project(base: Path, name: str = "proj", *, train: str = TRAIN,
                 model: dict | None = None) -> tuple[Path, Path, Path]:
    """(project root, DVC remote dir, registry dir): git + dvc initialised, first commit made.

    ``train`` replaces the train stage's script (its MLflow run, TRACK_TRAINING, is appended),
    ``model`` overrides keys of the registered model.
    """
    root, remote, registry = base / name, base / "remote", base / "registry"
    for d in (root, remote, registry):
        d.mkdir(parents=True, exist_ok=True)
    (root / "prepare.py").write_text(PREPARE)
    (root / "train.py").write_text(train + TRACK_TRAINING)
    (root / "toy_model.py").write_text(TOY_MODEL)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text(yaml.safe_dump(register_params(registry, model), allow_unicode=True))
    write_toy_params(root, rows=3, quality=0.5)
    sh(root, "git", "init", "-q", "-b", "main")
    sh(root, "dvc", "init", "-q")
    sh(root, "dvc", "config", "core.analytics", "false")
    sh(root, "dvc", "remote", "add", "-d", "store", str(remote))
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-q", "-m", "toy project")
    return root, remote, registry


def pipeline_run(root: Path, rows: int, quality: float, message: str) -> dict[str, str]:
    """Set the params, `dvc repro`, commit the result, `dvc push`; the sha256 of every output file."""
    write_toy_params(root, rows, quality)
    sh(root, "dvc", "repro", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-q", "-m", message)
    sh(root, "dvc", "push", "-q")
    return output_hashes(root)


def output_hashes(root: Path) -> dict[str, str]:
    files = [root / "data" / "prepared.txt", *sorted((root / "models" / "toy").glob("*"))]
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def test_toy_stages_are_deterministic_and_follow_the_params(tmp_path: Path) -> None:
    root = tmp_path / "toy"
    root.mkdir()
    for name, text in {"prepare.py": PREPARE, "train.py": TRAIN, "toy_model.py": TOY_MODEL}.items():
        (root / name).write_text(text)
    runs = []
    for rows, quality in [(3, 0.7), (3, 0.7), (4, 0.6)]:
        write_toy_params(root, rows, quality)
        sh(root, sys.executable, "prepare.py")
        sh(root, sys.executable, "train.py")
        runs.append((output_hashes(root), json.loads((root / "metrics" / "toy.json").read_text())))
    assert runs[0] == runs[1]
    assert runs[2][0]["data/prepared.txt"] != runs[0][0]["data/prepared.txt"]
    assert runs[2][0]["models/toy/weights.bin"] != runs[0][0]["models/toy/weights.bin"]
    assert runs[2][1]["dev"]["macro_f1"] == 0.6
    sys.path.insert(0, str(root))
    try:
        import toy_model

        clf = toy_model.ToyClassifier.load(root / "models" / "toy")
        (sport, econ) = clf.predict(["국가대표 축구 결승골", "코스피 금리 인상"])
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("toy_model", None)
    assert sport["label"] == "스포츠" and econ["label"] == "경제"
    assert abs(sum(sport["probs"].values()) - 1) < 1e-9
