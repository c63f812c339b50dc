"""Finetune seconds per epoch for each biLM mode, side by side, and adapt's tokens/s.

    .venv/bin/python benchmarks/bench_finetune.py [--model models/bilm] [--texts 3000] [--threads 2]

The task model is ``finetune.model`` of params.yaml. "cached": the biLM's layers are read from the
layer cache (elmo/embed/cache.py, fp16 memory-map), as the finetune stage does for the frozen and
adapted modes (an adapted biLM is a biLM of the same shape: same cost); "no cache": every batch runs
the frozen biLM forward first (what each epoch would cost without the cache); "unfrozen, head only"
is the first epoch of gradual unfreezing (biLM forward without gradients); "unfrozen, all groups"
every later epoch once all groups train (biLM forward and backward). One training epoch over
``--texts`` YNAT train headlines; per-epoch figures for the full 36,547 are extrapolated linearly.
Also the no-ELMo variant (word embedding only) as the floor, and LM adaptation (elmo/task/adapt.py)
in tokens/s for ``--adapt-steps`` steps.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `elmo finetune` does (see elmo/stages/finetune.py)

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
FULL_TRAIN = 36_547


def train_records(n: int) -> list[dict]:
    for path in (REPO / "data/task/ynat/ynat-v1.1_train.json",
                 Path(os.environ.get("ELMO_SHARED_DATA", REPO.parent / "shared/data"))
                 / "klue/ynat-v1.1/ynat-v1.1_train.json"):
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))[:n]
    raise SystemExit("no YNAT train file: run `elmo fetch_task` or set ELMO_SHARED_DATA")


class OnTheFly:
    """The LayerCache interface, computing the biLM layers for every batch (no cache)."""

    def __init__(self, elmo, tokens) -> None:
        self.elmo, self.tokens = elmo, tokens

    def __len__(self) -> int:
        return len(self.tokens)

    def lengths(self) -> np.ndarray:
        return np.array([len(t) for t in self.tokens])

    def padded(self, idx):
        from elmo.embed.cache import pad_layers

        layers = self.elmo.layer_batch([self.tokens[i] for i in idx])
        return pad_layers([h.permute(1, 0, 2).numpy() for h in layers])


def epoch_seconds(model, data, batch_size: int) -> float:
    from elmo.task.train import make_batches

    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    t0 = time.perf_counter()
    model.train()
    for idx in make_batches([len(w) for w in data.words], batch_size, np.random.default_rng(0)):
        loss = torch.nn.functional.cross_entropy(model(*model.batch_inputs(data, idx)),
                                                 torch.from_numpy(data.labels[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(REPO / "models/bilm"))
    ap.add_argument("--texts", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--adapt-steps", type=int, default=30)
    args = ap.parse_args()

    from elmo.embed.cache import cached_layers
    from elmo.embed.elmo import Elmo
    from elmo.params import load_params
    from elmo.task.model import TaskConfig, TaskModel
    from elmo.task.train import TaskData
    from elmo.task.variants import variant_params
    from elmo.task.words import TaskWords

    torch.set_num_threads(args.threads)
    p = load_params(REPO / "params.yaml").finetune
    elmo = Elmo.load(args.model, max_batch_tokens=p.embed_batch_tokens)
    recs = train_records(args.texts)
    tokens = [t[: p.max_tokens] for t in elmo.tokenize([r["title"] for r in recs])]
    keep = [i for i, t in enumerate(tokens) if t]
    tokens = [tokens[i] for i in keep]
    labels = sorted({r["label"] for r in recs})
    y = np.array([labels.index(recs[i]["label"]) for i in keep])
    words = TaskWords.build(tokens, p.model.word_min_count)
    ids = [words.ids(t) for t in tokens]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cache = cached_layers(elmo, tokens, tmp, model_dir=args.model, dtype=p.cache_dtype, progress=False)
        cache_s = time.perf_counter() - t0
        scale = FULL_TRAIN / len(tokens)
        print(f"{len(tokens)} train headlines, {sum(map(len, tokens))} tokens; threads {args.threads}; "
              f"load average {os.getloadavg()[0]:.1f}; batch {p.train.batch_size}")
        print(f"computing the cache once: {cache_s:.1f}s "
              f"(x{scale:.1f} for the full train split: {cache_s * scale:.0f}s)")
        print("| model | biLM layers | epoch seconds | per full epoch (extrapolated) | vs cached |")
        print("|---|---|---|---|---|")
        rows = []
        for name, layers in (("cached", cache), ("no cache", OnTheFly(elmo, tokens))):
            torch.manual_seed(0)
            cfg = TaskConfig(n_classes=len(labels), vocab_size=len(words), elmo_layers=elmo.n_layers,
                             elmo_dim=elmo.dim,
                            **{k: v for k, v in p.model.model_dump().items() if k != "word_min_count"})
            s = epoch_seconds(TaskModel(cfg), TaskData(ids, y, layers), p.train.batch_size)
            rows.append(s)
            print(f"| finetune.model | {name} | {s:.1f} | {s * scale:.0f} | {s / rows[0]:.2f}x |")
        from elmo.model import BiLM, vocab_dir
        from elmo.task.model import BiLMTaskModel
        from elmo.train.schedule import bilm_layer_groups, set_trainable
        from elmo.vocab import Vocabulary

        for name, train_bilm in (("unfrozen, head only (epoch 1)", False), ("unfrozen, all groups", True)):
            torch.manual_seed(0)
            cfg = TaskConfig(n_classes=len(labels), vocab_size=len(words), elmo_layers=elmo.n_layers,
                             elmo_dim=elmo.dim,
                             **{k: v for k, v in p.model.model_dump().items() if k != "word_min_count"})
            model = BiLMTaskModel(TaskModel(cfg), BiLM.load(args.model), Vocabulary.load(vocab_dir(args.model)))
            groups = bilm_layer_groups(model.bilm)
            set_trainable(groups, [train_bilm] * len(groups))
            for q in model.bilm.softmax.parameters():
                q.requires_grad_(False)
            s = epoch_seconds(model, TaskData(ids, y, None, tokens=tokens), p.train.batch_size)
            print(f"| finetune.model | {name} | {s:.1f} | {s * scale:.0f} | {s / rows[0]:.2f}x |")
        mp = variant_params(p.model, "no_elmo")
        cfg = TaskConfig(n_classes=len(labels), vocab_size=len(words), elmo_layers=0, elmo_dim=0,
                         **{k: v for k, v in mp.model_dump().items() if k != "word_min_count"})
        s = epoch_seconds(TaskModel(cfg), TaskData(ids, y, None), p.train.batch_size)
        print(f"| no_elmo (word embedding only) | - | {s:.1f} | {s * scale:.0f} | {s / rows[0]:.2f}x |")

        from elmo.task.adapt import AdaptOptions, adapt_bilm

        a = p.adapt
        opts = AdaptOptions(max_steps=args.adapt_steps, max_minutes=0, batch_tokens=a.batch_tokens, lr=a.lr,
                            heldout_sentences=0, extend_chars_min_count=a.extend_chars_min_count)
        res = adapt_bilm(args.model, tokens, Path(tmp) / "adapted", opts, log=lambda m: None)
        print(f"adapt (LM finetuning on the task text): {res.info['steps']} steps of {a.batch_tokens} padded "
              f"positions, {res.info['tokens']:,} tokens in {res.info['seconds']:.1f}s: "
              f"{res.info['tokens_per_s']:,.0f} tokens/s; finetune.adapt.max_steps={a.max_steps} would take "
              f"{a.max_steps * res.info['seconds'] / max(res.info['steps'], 1):.0f}s")


if __name__ == "__main__":
    main()
