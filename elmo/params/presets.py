"""The built-in pretrain presets: the one place their values are stated.

Each preset is the keys it sets over the code defaults of ``ModelParams`` / ``TrainParams``
(elmo/params/pretrain.py); ``pretrain.presets`` in params.yaml only overrides or adds presets, key
by key (``elmo params show`` prints them resolved). ``medium`` is ``small`` with a wider LSTM and
about twice the tokens (measured: README, valid perplexity 91.6 in 60 min on 2 cores).
Every preset ends by ``max_steps`` (or ``max_epochs``): a
wall clock (``max_minutes``) is an opt-in that makes the result depend on the machine's speed.
"""

from __future__ import annotations

from typing import Any

from elmo.dicts import deep_merge

TINY: dict[str, Any] = {  # tests, seconds
    "model": dict(char_embed_dim=8, filters=[(1, 16), (2, 16), (3, 32)], highway_layers=1, projection_dim=16,
                  lstm_dim=32, dropout=0.1, softmax="sampled", n_samples=64, adaptive_cutoffs=[100, 1000],
                  adaptive_div_value=2.0),
    "train": dict(batch_tokens=1024, lr=3e-3, warmup_steps=5, max_steps=60, val_every_steps=20, val_batches=5,
                  checkpoint_every_steps=20, log_every_steps=5),
}

SMALL: dict[str, Any] = {  # the CPU default: 2000 steps, 17-32 min on 2 cores (README)
    "model": dict(char_embed_dim=16, filters=[(1, 32), (2, 32), (3, 64), (4, 128), (5, 256)], highway_layers=1,
                  projection_dim=128, lstm_dim=256, dropout=0.1, softmax="adaptive", n_samples=1024,
                  adaptive_cutoffs=[2000, 10000], adaptive_div_value=4.0),
    "train": dict(batch_tokens=2048, lr=3e-3, warmup_steps=20, schedule="linear", max_steps=2000,
                  val_every_steps=50, val_batches=5, eval_max_tokens=200_000, checkpoint_every_steps=50),
}

# 2 CPU cores for about an hour: small's token/ELMo width (P 128: finetune costs the same), H 512
MEDIUM: dict[str, Any] = deep_merge(SMALL, {
    "model": dict(lstm_dim=512),
    "train": dict(max_steps=3600, warmup_steps=30),
})

FULL: dict[str, Any] = {  # the paper (the code defaults): 2048 char filters of widths 1..7, 2 highway, 4096 -> 512
    "model": {},
    "train": dict(batch_tokens=16384, lr=1e-3, warmup_steps=2000, schedule="linear", max_steps=200_000,
                  val_every_steps=2000, val_batches=50, checkpoint_every_steps=1000, log_every_steps=50),
}

BUILTIN: dict[str, dict[str, Any]] = {"tiny": TINY, "small": SMALL, "medium": MEDIUM, "full": FULL}
