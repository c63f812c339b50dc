"""``pretrain.init`` (elmo/train/init.py, README "When the corpus grows"): a biLM that continues.

The real pipeline (dvc.yaml) on a tiny workspace: one mirror month (cut to its first LINES petitions)
gives the first biLM (``init: previous`` asked, but there is none yet: scratch, said so); a second
month arrives, crawl..vocab rerun and DVC marks pretrain changed. Then pretrain runs in this process
(so that a hook can read the weights before the first step): ``previous`` starts from exactly the
previous biLM's parameters and keeps its word ids, and the drift report (the old biLM's perplexity
and OOV rate on the new month, before and after) is in metrics/pretrain.json and the MLflow run;
``scratch`` starts from other weights and the vocab stage's vocabulary.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from helpers.tiny_pipeline import copy_pipeline, tiny_params

pytestmark = pytest.mark.timeout(900)

OLD, NEW = "2017-08", "2019-04"
LINES = 120  # petitions kept of each month: seconds to tokenize


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, f"dvc {' '.join(args)}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def write_archive(shared_data: Path, dest: Path, months: list[str]) -> None:
    """A local archive (the archive's layout) of ``months``, each cut to its first LINES petitions."""
    dest.mkdir(parents=True, exist_ok=True)
    for m in months:
        lines = (shared_data / "petitions_archive" / f"petitions_{m}").read_bytes().splitlines(keepends=True)
        (dest / f"petitions_{m}").write_bytes(b"".join(lines[:LINES]))
    (dest / "files").write_text("".join(f"petitions_{m}\n" for m in months), encoding="utf-8")


def set_pretrain(root: Path, **keys) -> None:
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["pretrain"].update(keys)
    path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")


def weights(bilm_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(bilm_dir / "weights.safetensors"))


def words(vocab_dir: Path) -> list[str]:
    return [line.split("\t")[0] for line in (vocab_dir / "words.txt").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, repo_root: Path, shared_data: Path) -> dict:
    root = tmp_path_factory.mktemp("init")
    params = tiny_params(repo_root, root / "archive", root / "src", None)
    params["pretrain"]["init"] = "previous"  # asked from the start: no biLM yet, so scratch
    params["pretrain"]["trainer"].update(accelerator="cpu", devices=1, threads=1)
    params["tokenize"]["workers"] = 1
    copy_pipeline(repo_root, root, params)
    write_archive(shared_data, root / "archive", [OLD])
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc(root, "init", "-q")
    dvc(root, "repro", "pretrain")
    first = json.loads((root / "metrics/pretrain.json").read_text(encoding="utf-8"))
    clean_status = dvc(root, "status", "pretrain").stdout
    # a month arrives: crawl rechecks the archive (README), clean..vocab follow, pretrain is now out of date
    write_archive(shared_data, root / "archive", [OLD, NEW])
    dvc(root, "repro", "-f", "-s", "crawl")
    dvc(root, "repro", "vocab")
    grown_status = dvc(root, "status", "pretrain").stdout
    return {"root": root, "first": first, "clean_status": clean_status, "grown_status": grown_status}


def run_pretrain(root: Path, monkeypatch, **keys) -> tuple[dict, dict[str, torch.Tensor]]:
    """pretrain with ``keys`` set in params.yaml, in this process; (report, the weights before step 1)."""
    from elmo.cli import run_stage
    from elmo.train.module import BiLMTask

    set_pretrain(root, **keys)
    seen: dict[str, torch.Tensor] = {}

    def first_batch(self, batch, batch_idx):
        if not seen:
            seen.update({k: v.detach().clone() for k, v in self.model.state_dict().items()})

    monkeypatch.setattr(BiLMTask, "on_train_batch_start", first_batch, raising=False)
    return run_stage("pretrain", str(root / "params.yaml"), root), seen


def test_pretrain_init_previous_without_a_biLM_falls_back_to_scratch(workspace: dict) -> None:
    init = workspace["first"]["init"]
    assert init["asked"] == "previous" and init["used"] == "scratch"
    assert init["note"] == "no previous biLM in models/bilm: trained from scratch"  # workspace-relative
    assert workspace["first"]["months"] == [OLD]
    assert workspace["first"]["drift"] == {"available": False, "reason": "no previous biLM in models/bilm"}


def test_pretrain_init_reruns_when_the_corpus_grows(workspace: dict) -> None:
    assert "up to date" in workspace["clean_status"]
    grown = workspace["grown_status"]
    assert "pretrain:" in grown and "changed deps" in grown and "data/processed/arrays" in grown, grown


def test_pretrain_init_previous_resumes_weights_and_word_ids(workspace: dict, monkeypatch) -> None:
    root = workspace["root"]
    before = weights(root / "models/bilm")
    old_words = words(root / "models/bilm/vocab")
    assert words(root / "data/processed/vocab") != old_words  # the grown corpus has another vocabulary
    report, start = run_pretrain(root, monkeypatch, init="previous")

    init = report["init"]
    assert init["used"] == "previous" and init["from"] == "models/bilm" and init["from_months"] == [OLD]
    assert start.keys() == before.keys()
    for name, value in before.items():
        got = start[name]
        if name == "token_encoder.embed.weight":  # characters of the new month may have been added
            assert got.shape[0] == value.shape[0] + init["chars_added"]
            got = got[: value.shape[0]]
        assert torch.equal(got, value), name
    assert words(root / "models/bilm/vocab") == old_words  # ids unchanged
    fraction = yaml.safe_load((root / "params.yaml").read_text())["pretrain"]["init_train"]["steps_fraction"]
    assert report["steps"] == math.ceil(60 * fraction) < 60  # a share of the tiny preset's 60 steps
    assert report["months"] == [OLD, NEW]

    metrics = json.loads((root / "metrics/pretrain.json").read_text(encoding="utf-8"))
    drift = metrics["drift"]
    assert drift["available"] and drift["seen_months"] == [OLD] and drift["new_months"] == [NEW]
    for when in ("before", "after"):
        overall, month = drift[when]["overall"], drift[when]["months"][NEW]
        assert overall["ppl"] > 1 and 0 <= overall["oov_rate"] < 1 and overall["tokens"] > 0
        assert month["tokens"] == overall["tokens"]  # one new month: the same text
    assert drift["before"]["overall"]["tokens"] == drift["after"]["overall"]["tokens"]
    assert drift["before"]["overall"]["oov_rate"] == drift["after"]["overall"]["oov_rate"]  # same vocabulary
    assert drift["before"]["overall"]["oov_rate"] > 0  # the new month has words the old biLM never saw

    from elmo.params import load_params
    from elmo.tracking import client, configure

    configure(load_params(root / "params.yaml").mlflow, root)
    run = client().get_run(report["mlflow_run_id"])
    assert run.data.tags["elmo.init"] == "previous"
    assert run.data.metrics["drift/before/overall/ppl"] == drift["before"]["overall"]["ppl"]
    assert run.data.metrics[f"drift/after/{NEW}/oov_rate"] == drift["after"]["months"][NEW]["oov_rate"]


def test_pretrain_init_scratch_ignores_the_previous_biLM(workspace: dict, monkeypatch) -> None:
    root = workspace["root"]
    before = weights(root / "models/bilm")
    report, start = run_pretrain(root, monkeypatch, init="scratch")
    assert report["init"] == {"asked": "scratch", "used": "scratch"}
    assert any(start[k].shape != v.shape or not torch.equal(start[k], v) for k, v in before.items())
    assert words(root / "models/bilm/vocab") == words(root / "data/processed/vocab")
    assert report["steps"] == 60 and report["months"] == [OLD, NEW]
    assert report["drift"]["available"] and report["drift"]["new_months"] == []  # it had seen both months


def test_pretrain_init_previous_under_dvc_repro_continues_the_biLM_dvc_kept(workspace: dict) -> None:
    """`dvc repro` leaves models/bilm in place while pretrain runs (persist), so `previous` finds it."""
    from elmo.io import sha256_file

    root = workspace["root"]
    kept = sha256_file(root / "models/bilm/weights.safetensors")
    set_pretrain(root, init="previous")
    dvc(root, "repro", "pretrain")
    metrics = json.loads((root / "metrics/pretrain.json").read_text(encoding="utf-8"))
    assert metrics["init"]["used"] == "previous" and metrics["init"]["from_weights_sha256"] == kept
    assert "up to date" in dvc(root, "status", "pretrain").stdout


def test_pretrain_init_params_are_validated_and_scale_the_preset() -> None:
    from elmo.params import ParamsError, parse_params
    from elmo.params.pretrain import InitTrainParams, TrainParams
    from elmo.train.init import continued_train

    with pytest.raises(ParamsError, match="pretrain.init"):
        parse_params({"pretrain": {"init": "last"}})
    with pytest.raises(ParamsError, match="steps_fraction"):
        parse_params({"pretrain": {"init_train": {"steps_fraction": 0}}})
    t = continued_train(TrainParams(max_steps=2000, warmup_steps=20, lr=3e-3),
                        InitTrainParams(steps_fraction=0.25, lr_scale=0.5))
    assert (t.max_steps, t.warmup_steps, t.lr) == (500, 5, 1.5e-3)
    assert continued_train(TrainParams(max_steps=3), InitTrainParams(steps_fraction=0.1)).max_steps == 1
