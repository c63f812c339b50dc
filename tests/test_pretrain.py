"""The pretrain stage on tiny synthetic workspaces: it learns, it resumes exactly, it reports.

Every workspace is built here (vocabulary + training arrays, as the vocab stage writes them);
nothing needs the mirror. Runs use one torch thread and share one MLflow SQLite store.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from elmo.data.batch import encode_batch
from elmo.errors import StageError
from elmo.params import parse_params
from elmo.params.pretrain import RUNTIME_ONLY, PretrainParams, TrainParams
from elmo.train.checkpoints import FINGERPRINT_FILE, prepare
from elmo.train.datamodule import StepBatches, locate
from elmo.train.module import lr_factor
from helpers.synthetic import random_corpus, word_corpus, write_workspace


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def mlflow_db(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mlflow") / "mlflow.db"


@pytest.fixture(scope="session")
def repeated_data(tmp_path_factory) -> Path:
    """12 distinct sentences over 30 words, repeated 8 times; valid and test are the same 12."""
    root = tmp_path_factory.mktemp("repeated")
    distinct = word_corpus(random_corpus(12, 34, min_len=5, max_len=9, seed=5, zipf=0.5))
    write_workspace(root, {"train": distinct * 8, "valid": distinct, "test": distinct})
    return root


@pytest.fixture(scope="session")
def random_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("random")
    sents = word_corpus(random_corpus(160, 80, min_len=2, max_len=14, seed=9))
    write_workspace(root, {"train": sents[:120], "valid": sents[120:140], "test": sents[140:]})
    return root


def tiny_params(data: Path, db: Path, *, model: dict | None = None, train: dict | None = None, **pretrain):
    return parse_params({
        "seed": 7,
        "allow_paths_outside_workspace": True,  # the artifacts beside the test's database
        "mlflow": {"tracking_uri": f"sqlite:///{db}", "artifact_root": str(db.parent / "artifacts"),
                   "experiment": "test-pretrain"},
        "pretrain": {
            "vocab_dir": str(data / "data/processed/vocab"), "arrays_dir": str(data / "data/processed/arrays"),
            "preset": "tiny", "trainer": {"accelerator": "cpu", "devices": 1, "threads": 1},
            "presets": {"tiny": {"model": model or {}, "train": train or {}}},
            **pretrain,
        },
    })


# ---------------------------------------------------------------------------- units
def test_lr_schedule_warms_up_then_decays_to_the_floor() -> None:
    t = TrainParams(lr=1.0, warmup_steps=10, max_steps=110, schedule="linear", min_lr_ratio=0.1)
    assert lr_factor(0, t) == pytest.approx(0.1) and lr_factor(9, t) == pytest.approx(1.0)
    assert lr_factor(60, t) == pytest.approx(0.55) and lr_factor(110, t) == pytest.approx(0.1)
    assert lr_factor(500, t) == pytest.approx(0.1)
    c = t.model_copy(update={"schedule": "cosine"})
    assert lr_factor(10, c) == pytest.approx(1.0) and lr_factor(110, c) == pytest.approx(0.1)
    assert lr_factor(60, c) == pytest.approx(0.55)
    assert lr_factor(77, t.model_copy(update={"schedule": "constant"})) == 1.0


def test_step_stream_resumes_anywhere_and_shards_evenly() -> None:
    def plan(epoch: int) -> list[np.ndarray]:  # 7 batches an epoch, a different order each epoch
        rng = np.random.default_rng(epoch)
        return [np.array([epoch, int(i)]) for i in rng.permutation(7)]

    def take(loader: StepBatches, n: int) -> list[tuple[int, int]]:
        it = iter(loader)
        return [tuple(next(it)) for _ in range(n)]

    collate = lambda idx: idx  # noqa: E731
    whole = take(StepBatches(plan, collate), 21)
    assert [b[0] for b in whole] == [0] * 7 + [1] * 7 + [2] * 7  # epochs in order, each batch once
    assert sorted(whole[7:14]) == [(1, i) for i in range(7)]
    for step in (0, 3, 7, 11, 20):
        assert locate(step, lambda e: 7) == (step // 7, step % 7)
        assert take(StepBatches(plan, collate, first_step=lambda: step), 21 - step) == whole[step:], step
    # the start is read when the first batch is pulled, not when iter() is called
    box = {"step": 0}
    loader = StepBatches(plan, collate, first_step=lambda: box["step"])
    it = iter(loader)
    box["step"] = 5
    assert tuple(next(it)) == whole[5]
    # two ranks: disjoint, the same number of steps each (the 7th batch of an epoch is left out)
    r0 = StepBatches(plan, collate, rank=0, world=2)
    r1 = StepBatches(plan, collate, rank=1, world=2)
    a, b = take(r0, 3), take(r1, 3)
    assert not set(a) & set(b) and {x[0] for x in a + b} == {0} and take(r0, 4)[3][0] == 1
    with pytest.raises(RuntimeError, match="other data or another world size"):
        r0.load_state_dict({**r0.state_dict(), "world": 4})


def test_checkpoints_of_another_fingerprint_are_moved_aside(tmp_path: Path) -> None:
    d = tmp_path / "ckpt"
    assert prepare(d, "aaa", resume=True) == (None, "starting")
    (d / "last.ckpt").write_bytes(b"x")
    assert prepare(d, "aaa", resume=True) == (d / "last.ckpt", f"resuming from {d / 'last.ckpt'}")
    path, msg = prepare(d, "bbb", resume=True)
    assert path is None and "another config, data or code" in msg
    assert (tmp_path / "ckpt.previous" / "last.ckpt").is_file() and not (d / "last.ckpt").exists()
    assert json.loads((d / FINGERPRINT_FILE).read_text())["fingerprint"] == "bbb"
    path, msg = prepare(d, "bbb", resume=False)
    assert path is None and "resume is off" in msg


def test_dvc_stage_lists_every_output_relevant_param(repo_root: Path) -> None:
    dvc = yaml.safe_load((repo_root / "dvc.yaml").read_text())
    stage = dvc["stages"]["pretrain"]
    assert stage["cmd"] == "elmo pretrain"
    listed = set(stage["params"])
    expected = {"seed", "pretrain.presets"}  # the overrides; the built-ins are code (elmo/params)
    for key, field in PretrainParams.model_fields.items():
        if key == "trainer" or key in RUNTIME_ONLY:
            continue
        expected.add(f"pretrain.{key}")
    expected |= {f"pretrain.trainer.{k}" for k in PretrainParams().trainer.model_fields
                 if f"trainer.{k}" not in RUNTIME_ONLY}
    assert listed == expected
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    assert params["pretrain"]["vocab_dir"] == params["vocab"]["out_dir"]
    assert params["pretrain"]["arrays_dir"] == params["vocab"]["arrays_dir"]
    assert params["finetune"]["bilm_dir"] == params["pretrain"]["out_dir"]
    for dep in stage["deps"]:
        if not dep.startswith("${"):
            assert (repo_root / dep).exists(), dep
    # the repository's params validate, with the small preset selected; it ends by steps (no clock)
    p = parse_params(params)
    assert p.pretrain.preset == "small" and p.pretrain.selected.train.max_minutes is None
    assert p.pretrain.model_dump() == parse_params({}).pretrain.model_dump()  # the yaml spells out the defaults


def test_bad_inputs_are_named(tmp_path: Path, random_data: Path, mlflow_db: Path) -> None:
    from elmo.stages import pretrain

    p = tiny_params(random_data, mlflow_db, vocab_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere/vocab.json"):
        pretrain.run(p, tmp_path)
    p = tiny_params(random_data, mlflow_db, model={"filters": [[12, 4]]})  # wider than 8 chars a token
    with pytest.raises(StageError, match="does not fit the vocabulary.*filters: width 12"):
        pretrain.run(p, tmp_path)


# ---------------------------------------------------------------------------- the stage
def test_valid_perplexity_falls_on_a_repeated_corpus(tmp_path: Path, repeated_data: Path, mlflow_db: Path) -> None:
    """30 words: a uniform guess has perplexity ~34, the floor is ~1.35 (each sentence is
    determined by its first word); within 100 steps the biLM must be below 1.6 both ways."""
    from mlflow import MlflowClient

    from elmo.model import BiLM
    from elmo.stages import pretrain
    from elmo.vocab import Vocabulary

    p = tiny_params(repeated_data, mlflow_db,
                    model={"dropout": 0.0, "softmax": "full", "projection_dim": 32, "lstm_dim": 64},
                    train={"max_steps": 100, "lr": 0.02, "warmup_steps": 0, "batch_tokens": 256,
                           "val_every_steps": 25, "checkpoint_every_steps": 50, "log_every_steps": 10})
    report = pretrain.run(p, tmp_path)
    m = json.loads((tmp_path / "metrics/pretrain.json").read_text())
    assert m["steps"] == 100 and m["ended_by"] == "steps"
    assert 100 * 100 < m["tokens_trained"] <= 100 * 256 and m["epochs"] > 10
    for split in ("valid", "test"):
        assert m[split]["ppl"] < 1.6 and m[split]["ppl_fwd"] < 1.6 and m[split]["ppl_bwd"] < 1.6, m[split]
        assert m[split]["tokens"] == sum(len(s) + 1 for s in word_corpus(random_corpus(12, 34, 5, 9, 5, 0.5)))
    curve = (tmp_path / "plots/pretrain/perplexity.csv").read_text().splitlines()
    assert curve[0] == "step,valid_ppl,valid_ppl_fwd,valid_ppl_bwd"
    assert [r.split(",")[0] for r in curve[1:]] == ["25", "50", "75", "100"]
    first, last = float(curve[1].split(",")[1]), float(curve[-1].split(",")[1])
    assert first > 5 and last < 1.6
    loss = (tmp_path / "plots/pretrain/loss.csv").read_text().splitlines()
    assert loss[0] == "step,train_loss,lr,tokens_per_s" and len(loss) == 1 + 10
    for image in ("loss.png", "perplexity.png"):  # the same curves as images (offline `dvc plots show`)
        data = (tmp_path / "plots/pretrain" / image).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000, image
    # the saved biLM is self-contained and loads without pickle
    model = BiLM.load(tmp_path / "models/bilm")
    vocab = Vocabulary.load(tmp_path / "models/bilm/vocab")
    batch = encode_batch(vocab, [["가", "나"]])
    assert model.layer_outputs(batch.chars, batch.mask).shape == (3, 1, 4, 64)
    # the MLflow run holds params, the per-step curves, throughput and per-layer gradient norms
    client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
    run = client.get_run(report["mlflow_run_id"])
    assert run.data.params["preset"] == "tiny" and run.data.tags["elmo.stage"] == "pretrain"
    for key in ("train/loss", "train/tokens_per_s", "grad_norm/forward_2", "grad_norm/char_cnn", "grad_norm/total"):
        assert len(client.get_metric_history(run.info.run_id, key)) == 10, key
    for key in ("valid/ppl_fwd", "valid/ppl_bwd", "valid/ppl"):
        assert [x.step for x in client.get_metric_history(run.info.run_id, key)] == [25, 50, 75, 100]
    assert run.data.metrics["final/test_ppl"] == pytest.approx(m["test"]["ppl"], rel=1e-3)


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize("crash_at, resumed_from", [(11, 9), (8, 6)])
def test_resume_after_a_crash_ends_with_the_uninterrupted_weights(tmp_path: Path, random_data: Path, mlflow_db: Path,
                                                                  monkeypatch, crash_at: int,
                                                                  resumed_from: int) -> None:
    """Sampled softmax + dropout (both random), 9 batches an epoch, 14 steps, checkpoints every 3,
    validation every 7. A crash in step 12 resumes at step 9 (the start of epoch 2), one in step 9
    at step 6 (mid-epoch, before a validation); both must end bit-identical to the run that
    never stopped."""
    from elmo.stages import pretrain
    from elmo.train.module import BiLMTask

    train = {"max_steps": 14, "batch_tokens": 160, "checkpoint_every_steps": 3, "val_every_steps": 7,
             "log_every_steps": 1, "warmup_steps": 2}
    params = tiny_params(random_data, mlflow_db, model={"dropout": 0.3, "softmax": "sampled", "n_samples": 20},
                         train=train)
    a, b = tmp_path / "a", tmp_path / "b"
    pretrain.run(params, a)

    original = BiLMTask.training_step

    def crashing(self, batch, batch_idx):
        if self.global_step == crash_at:
            raise Crash("simulated crash")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(BiLMTask, "training_step", crashing)
    with pytest.raises(Crash):
        pretrain.run(params, b)
    assert torch.load(b / "models/checkpoints/bilm/last.ckpt", weights_only=False)["global_step"] == resumed_from
    monkeypatch.setattr(BiLMTask, "training_step", original)
    report = pretrain.run(params, b)
    assert report["checkpoints"].startswith("resuming from")

    ca = torch.load(a / "models/checkpoints/bilm/last.ckpt", weights_only=False)
    cb = torch.load(b / "models/checkpoints/bilm/last.ckpt", weights_only=False)
    assert ca["global_step"] == cb["global_step"] == 14
    assert ca["state_dict"].keys() == cb["state_dict"].keys()
    for k, v in ca["state_dict"].items():
        assert torch.equal(v, cb["state_dict"][k]), k
    sa, sb = ca["optimizer_states"][0]["state"], cb["optimizer_states"][0]["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    ma, mb = (json.loads((w / "metrics/pretrain.json").read_text()) for w in (a, b))
    assert ma["valid"] == mb["valid"] and ma["test"] == mb["test"]
    assert ma["tokens_trained"] == mb["tokens_trained"] > 0  # counted across the interruption
    # the curves of the resumed run continue the interrupted one: one row per step, no gap
    rows = (b / "plots/pretrain/loss.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, 15))
    uninterrupted = (a / "plots/pretrain/loss.csv").read_text().splitlines()[1:]
    assert [r.split(",")[1] for r in rows] == [r.split(",")[1] for r in uninterrupted]


def test_dvc_plots_render_the_pretrain_curves(tmp_path: Path, repo_root: Path) -> None:
    """`dvc plots show` draws the loss and the three perplexity curves from the stage's CSVs."""
    import os
    import subprocess
    import sys

    dvc = yaml.safe_load((repo_root / "dvc.yaml").read_text())
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"pretrain": dvc["stages"]["pretrain"]},
                                                       "plots": dvc["plots"]}, sort_keys=False))
    (tmp_path / "params.yaml").write_text((repo_root / "params.yaml").read_text())
    plots = tmp_path / "plots/pretrain"
    plots.mkdir(parents=True)
    (plots / "loss.csv").write_text("step,train_loss,lr,tokens_per_s\n10,7.9,0.001,900\n20,7.1,0.002,950\n")
    (plots / "perplexity.csv").write_text("step,valid_ppl,valid_ppl_fwd,valid_ppl_bwd\n"
                                          "10,900,950,850\n20,600,610,590\n")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "dvc", *a], cwd=tmp_path, env=env,  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    assert run("init", "--no-scm", "-q").returncode == 0
    out = run("plots", "show", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)["data"]
    curves = {v["field"] for v in data["pretrain perplexity"][0]["content"]["data"]["values"]}
    assert curves == {"valid_ppl", "valid_ppl_fwd", "valid_ppl_bwd"}
    loss = data["plots/pretrain/loss.csv"][0]["content"]["data"]["values"]
    assert [(r["step"], r["train_loss"]) for r in loss] == [("10", "7.9"), ("20", "7.1")]
