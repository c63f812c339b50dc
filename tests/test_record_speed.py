"""Budgets that do not depend on speed (elmo/budget.py): the default trainings end by steps or epochs,
so a slower machine gives the same model, byte for byte; a wall clock is an opt-in that says so.

The same tiny pretrain (tiny preset) and finetune (a KLUE-layout task, the adapted main model and
a comparison) run twice in fresh workspaces, once as they are and once slowed down by the test hook
``ELMO_STEP_SLEEP_S`` (a sleep after every training step, counted here per training loop): every
file of the model directories has the same sha256, the metrics files are equal but for the keys
that measure time (TIME_KEYS), and each says how it ended.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from elmo.budget import STEP_SLEEP_ENV
from helpers.synthetic import write_workspace
from test_finetune import klue_files
from tiny_elmo import corpus_tokens

pytestmark = pytest.mark.timeout(300)

PRETRAIN_STEPS = 20
SLEEP_S = 0.05
# keys whose values measure wall time or throughput: the only ones allowed to differ between the runs
TIME_KEYS = {"train_minutes", "tokens_per_s", "seconds", "train_seconds", "seconds_per_epoch",
             "bilm_layers_seconds", "seconds_total"}
MODEL_DIRS = ("models/bilm", "models/bilm_ynat", "models/ynat")
LOOP = Path(__file__).resolve().parents[1] / "elmo/task/loop.py"  # finetune's training loop
METRICS = ("metrics/pretrain.json", "metrics/finetune/ynat.json", "metrics/finetune/ynat_comparison.json")


@pytest.fixture(scope="module")
def tokens() -> list[list[str]]:
    from elmo.text import Tokenizer

    return corpus_tokens(Tokenizer("mecab"))


def make_workspace(root: Path, repo_root: Path, tokens: list[list[str]], **train) -> Path:
    """What vocab would write for the tiny headline corpus, a KLUE-layout task, and params.yaml."""
    write_workspace(root, {"train": tokens * 4, "valid": tokens[:6], "test": tokens[6:12]})
    klue_files(root / "src")
    params = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    p = params["pretrain"]
    p["preset"] = "tiny"
    p["trainer"].update(accelerator="cpu", devices=1, threads=1)
    p["presets"] = {"tiny": {"train": {"max_steps": PRETRAIN_STEPS, "batch_tokens": 256, "val_every_steps": 10,
                                       "checkpoint_every_steps": 10, **train}}}
    f = params["finetune"]
    f["tasks"]["ynat"]["source"] = str(root / "src")
    f["model"].update(word_dim=8, hidden=8, word_min_count=1)
    f["train"].update(batch_size=4, lr=0.01, max_epochs=3, patience=2, threads=1)
    f["tfidf"].update(min_df=1)
    f["adapt"].update(max_steps=4, batch_tokens=128, heldout_sentences=2)
    f.update(heldout_fraction=0.25, cache_dtype="float32", compare=["tfidf_lr", "no_elmo"])
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    return root / "params.yaml"


def run_pipeline(root: Path, pfile: Path, stages=("pretrain", "fetch_task", "finetune")) -> dict:
    from elmo.cli import run_stage

    return {s: run_stage(s, str(pfile), root) for s in stages}


def counting_sleep(monkeypatch) -> Counter:
    """Count the test hook's sleeps by the file of the training that called it (elmo.budget's own
    ``time`` only: other sleepers in the process are not counted). finetune's trainings step through
    elmo/task/loop.py: its caller (adapt.py, train.py) is the one counted."""
    import elmo.budget

    calls: Counter = Counter()

    def sleep(seconds: float) -> None:
        frame = sys._getframe(2)  # step_pause's caller
        while Path(frame.f_code.co_filename).resolve() == LOOP:
            frame = frame.f_back
        calls[Path(frame.f_code.co_filename).name] += 1
        time.sleep(seconds)

    monkeypatch.setattr(elmo.budget, "time", SimpleNamespace(sleep=sleep))
    return calls


def file_hashes(root: Path) -> dict[str, str]:
    out = {}
    for d in MODEL_DIRS:
        for path in sorted((root / d).rglob("*")):
            if path.is_file():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def without_time(doc):
    if isinstance(doc, dict):
        return {k: without_time(v) for k, v in doc.items() if k not in TIME_KEYS}
    if isinstance(doc, list):
        return [without_time(v) for v in doc]
    return doc


def tags(root: Path, stage: str) -> dict[str, str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("elmo-ko")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`elmo.stage` = '{stage}'")
    assert len(runs) == 1
    return runs[0].data.tags


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings():
    handler = Warnings()
    logging.getLogger("elmo").addHandler(handler)
    yield handler
    logging.getLogger("elmo").removeHandler(handler)


def test_record_slowed_run_same_model(tmp_path: Path, repo_root: Path, tokens, monkeypatch, warnings) -> None:
    normal, slowed = tmp_path / "normal", tmp_path / "slowed"
    monkeypatch.delenv(STEP_SLEEP_ENV, raising=False)
    reports = run_pipeline(normal, make_workspace(normal, repo_root, tokens))
    monkeypatch.setenv(STEP_SLEEP_ENV, str(SLEEP_S))
    calls = counting_sleep(monkeypatch)
    slow_reports = run_pipeline(slowed, make_workspace(slowed, repo_root, tokens))

    # the hook slowed every training loop, once a step
    fin = json.loads((slowed / "metrics/finetune/ynat.json").read_text())
    assert calls["callbacks.py"] == PRETRAIN_STEPS  # pretrain (Lightning callback)
    assert calls["adapt.py"] == fin["adapt"]["steps"] == 4  # finetune's LM adaptation of the biLM
    assert calls["train.py"] >= 2 * fin["epochs"]  # the task models (main and no_elmo)
    assert set(calls) == {"callbacks.py", "adapt.py", "train.py"}

    hashes = file_hashes(normal)
    assert any(k.endswith("weights.safetensors") for k in hashes) and "models/ynat/config.json" in hashes
    assert file_hashes(slowed) == hashes
    for name in METRICS:
        a, b = (json.loads((r / name).read_text()) for r in (normal, slowed))
        assert without_time(a) == without_time(b), name
        assert a != without_time(a), f"{name}: no time key left out (TIME_KEYS is stale)"

    # how each training ended: by its count, in the metrics, the reports and the MLflow runs; no warning
    pre = json.loads((normal / "metrics/pretrain.json").read_text())
    assert pre["ended_by"] == reports["pretrain"]["ended_by"] == "steps" and pre["steps"] == PRETRAIN_STEPS
    assert fin["ended_by_each"]["adapt"] == fin["adapt"]["ended_by"] == "steps"
    assert set(fin["ended_by_each"]) == {"adapt", "main", "no_elmo"}
    assert set(fin["ended_by_each"].values()) <= {"steps", "epochs", "early_stop"}
    assert fin["ended_by"] == fin["ended_by_each"]["main"] == slow_reports["finetune"]["ended_by"]
    rows = json.loads((normal / "metrics/finetune/ynat_comparison.json").read_text())["rows"]
    assert {r["name"]: r["ended_by"] for r in rows if r["name"] == "no_elmo"} == {
        "no_elmo": fin["ended_by_each"]["no_elmo"]}
    assert tags(normal, "pretrain")["ended_by"] == "steps"
    assert tags(normal, "finetune")["ended_by"] == fin["ended_by"]
    assert not [m for m in warnings.messages if "speed" in m]

    # the model directories hold what the model is: no MLflow run id, no timings
    for root in (normal, slowed):
        for d in MODEL_DIRS:
            for cfg in (root / d).rglob("config.json"):
                text = cfg.read_text()
                for key in ("run_id", '"seconds"', "tokens_per_s"):
                    assert key not in text, (cfg, key)


def test_record_clock_opt_in_ends_by_clock_and_warns_once(tmp_path: Path, repo_root: Path, tokens, monkeypatch,
                                                           warnings) -> None:
    """max_minutes set: a slow machine (the hook) meets the clock after the first step."""
    monkeypatch.setenv(STEP_SLEEP_ENV, "0.2")
    pfile = make_workspace(tmp_path, repo_root, tokens, max_minutes=0.001)  # 60 ms
    report = run_pipeline(tmp_path, pfile, ("pretrain",))["pretrain"]
    metrics = json.loads((tmp_path / "metrics/pretrain.json").read_text())
    assert metrics["ended_by"] == report["ended_by"] == "clock" and 1 <= metrics["steps"] < PRETRAIN_STEPS
    assert tags(tmp_path, "pretrain")["ended_by"] == "clock"
    clock = [m for m in warnings.messages if "depends on this machine's speed" in m]
    assert len(clock) == 1 and clock[0].startswith("pretrain:"), warnings.messages


def test_record_finetune_clocks_end_by_clock(tmp_path: Path, tokens, monkeypatch, warnings) -> None:
    """The task-model loop and the adaptation with their opt-in clocks: ended_by clock, and the
    adapted biLM's directory still holds no timing."""
    import numpy as np

    from elmo.budget import warn_clock
    from elmo.log import get_logger
    from elmo.model.files import read_config
    from elmo.task.adapt import AdaptOptions, adapt_bilm
    from elmo.task.model import TaskConfig, TaskModel
    from elmo.task.train import TaskData, fit
    from tiny_elmo import make_bilm_dir

    monkeypatch.setenv(STEP_SLEEP_ENV, "0.05")
    bilm = make_bilm_dir(tmp_path, _tokenizer())
    res = adapt_bilm(bilm, tokens, tmp_path / "a", AdaptOptions(max_steps=50, max_minutes=0.001, batch_tokens=64,
                                                                heldout_sentences=0), log=lambda s: None)
    assert res.info["ended_by"] == "clock" and res.info["steps"] < 50 and res.info["seconds"] > 0
    assert "seconds" not in read_config(tmp_path / "a")["meta"]["adapt"]
    full = adapt_bilm(bilm, tokens, tmp_path / "b", AdaptOptions(max_steps=2, batch_tokens=64, heldout_sentences=0),
                      log=lambda s: None)
    assert full.info["ended_by"] == "steps" and full.info["steps"] == 2

    rng = np.random.default_rng(0)
    words = [rng.integers(1, 20, size=int(n)) for n in rng.integers(2, 6, size=24)]
    data = TaskData(words, np.arange(24) % 3)
    model = TaskModel(TaskConfig(n_classes=3, vocab_size=20, use_elmo=False, word_dim=4, hidden=4))
    out = fit(model, data, data, ["a", "b", "c"], batch_size=4, lr=0.01, weight_decay=0.0, max_epochs=20,
              patience=20, grad_clip=5.0, seed=0, max_seconds=0.5, log=lambda s: None)  # 6 steps x 50 ms an epoch
    assert out.ended_by == "clock" and len(out.history) < 20
    ended = {"adapt": res.info["ended_by"], "main": out.ended_by, "other": "epochs"}
    assert warn_clock(get_logger("finetune"), "finetune", ended)
    assert len(warnings.messages) == 1 and "adapt, main" in warnings.messages[0]
    assert not warn_clock(get_logger("finetune"), "finetune", {"main": "early_stop"})
    assert len(warnings.messages) == 1


def _tokenizer():
    from elmo.text import Tokenizer

    return Tokenizer("mecab")
