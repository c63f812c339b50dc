"""A 2-process DDP run of ``elmo pretrain`` on CPU (gloo), the way a user starts one: params + CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from helpers.synthetic import random_corpus, word_corpus, write_workspace


def test_two_process_ddp_run_finishes(tmp_path: Path, repo_root: Path) -> None:
    ws = tmp_path / "ws"
    sents = word_corpus(random_corpus(200, 80, min_len=2, max_len=14, seed=4))
    write_workspace(ws, {"train": sents[:160], "valid": sents[160:180], "test": sents[180:]})
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["mlflow"]["tracking_uri"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params["pretrain"]["preset"] = "tiny"
    params["pretrain"]["presets"] = {"tiny": {  # overrides of the built-in tiny preset, key by key
        "train": dict(max_steps=8, batch_tokens=160, val_every_steps=4, checkpoint_every_steps=4, log_every_steps=2),
        "model": dict(softmax="adaptive", adaptive_cutoffs=[20, 40]),  # DDP must find its unused tails
    }}
    params["pretrain"]["trainer"].update(accelerator="cpu", devices=2, strategy="ddp", threads=1)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False))

    elmo = Path(sys.executable).parent / "elmo"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    out = subprocess.run([str(elmo), "pretrain"], cwd=ws, env=env, capture_output=True, text=True, timeout=420)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["steps"] == 8 and report["ended_by"] == "steps"
    assert report["test"]["ppl"] > 1 and report["valid"]["tokens"] > 0
    ckpt = torch.load(ws / "models/checkpoints/bilm/last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 8
    loader_state = ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert loader_state["world"] == 2
    # each rank took its own half of the batches: 2 processes x 8 steps
    rows = (ws / "plots/pretrain/loss.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and [int(r.split(",")[0]) for r in rows[1:]] == [2, 4, 6, 8]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # only rank 0 opened a run
