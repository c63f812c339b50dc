"""The scales of the task model's inputs: each biLM layer against the trainable word embedding.

    .venv/bin/python benchmarks/feature_scales.py [--model models/bilm] [--texts 2000]

Prints, over ``--texts`` YNAT train headlines, the RMS (root mean square over tokens and features)
of ELMo's layer 0 (the char-CNN token vector), each LSTM layer, the ScalarMix at init (equal
weights, γ = 1) and the word embedding at init (``nn.Embedding``: N(0, 1), RMS 1). Inputs on very
different scales are what the mix and the task RNN would partly ignore at the start of training.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(REPO / "models/bilm"))
    ap.add_argument("--texts", type=int, default=2000)
    args = ap.parse_args()

    from elmo.embed.elmo import Elmo
    from elmo.embed.scalar_mix import ScalarMix
    from elmo.params import load_params
    from elmo.task.model import TaskConfig, TaskModel

    path = REPO / "data/task/ynat/ynat-v1.1_train.json"
    if not path.is_file():
        shared = Path(os.environ.get("ELMO_SHARED_DATA", REPO.parent / "shared/data"))
        path = shared / "klue/ynat-v1.1/ynat-v1.1_train.json"
    recs = json.loads(path.read_text(encoding="utf-8"))[: args.texts]
    elmo = Elmo.load(args.model)
    out = elmo.embed([r["title"] for r in recs], mix=None)
    layers = torch.cat([h for h in out.layers], dim=1)  # (L+1, N_tokens, 2P)
    rms = [float(h.pow(2).mean().sqrt()) for h in layers]
    with torch.no_grad():
        mixed = float(ScalarMix(elmo.n_layers)(layers).pow(2).mean().sqrt())
    p = load_params(REPO / "params.yaml").finetune.model
    torch.manual_seed(0)
    model = TaskModel(TaskConfig(n_classes=7, vocab_size=20000, elmo_layers=elmo.n_layers, elmo_dim=elmo.dim,
                                 word_dim=p.word_dim or 100))
    emb = float(model.embed.weight[1:].pow(2).mean().sqrt())
    print(f"{args.model}: {len(recs)} headlines, {layers.shape[1]:,} tokens")
    print("| input | RMS | / word embedding |")
    print("|---|---|---|")
    for i, r in enumerate(rms):
        name = "layer 0 (char-CNN token vector)" if i == 0 else f"layer {i} (LSTM {i}, both directions)"
        print(f"| {name} | {r:.3f} | {r / emb:.3f} |")
    print(f"| ScalarMix at init (equal weights, γ = 1) | {mixed:.3f} | {mixed / emb:.3f} |")
    print(f"| word embedding at init (task model) | {emb:.3f} | 1.000 |")


if __name__ == "__main__":
    main()
