"""Loader throughput in tokens per second, against the training step it feeds.

    python benchmarks/bench_loader.py [--vocab-dir data/processed/vocab] [--arrays-dir data/processed/arrays]
                                      [--batch-tokens 4096] [--preset small] [--train-steps 5] [--threads 1]

Needs the vocab stage's outputs (``dvc repro vocab`` or ``elmo vocab``). Measures one epoch of
the train split through ``make_loader`` (bucketing by ``max_tokens``, as pretrain uses it) and,
when the biLM code is present (elmo.model), a few forward+backward steps of the chosen pretrain
preset on the same batches, on this machine's CPU: the loader must outrun training ≥ 10×.
Tokens are real positions (words + <bos>/<eos>), not padding.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from elmo.data.loader import SentenceDataset, make_loader  # noqa: E402
from elmo.vocab import Vocabulary  # noqa: E402


def loader_epoch(ds: SentenceDataset, batch_tokens: int, num_workers: int) -> tuple[float, int, int, float]:
    loader = make_loader(ds, max_tokens=batch_tokens, shuffle=True, seed=0, num_workers=num_workers)
    t0 = time.perf_counter()
    tokens = batches = padded = 0
    for batch in loader:
        tokens += int(batch.mask.sum())
        padded += batch.mask.numel()
        batches += 1
    return time.perf_counter() - t0, tokens, batches, 1 - tokens / padded


def train_rate(vocab: Vocabulary, ds: SentenceDataset, preset_name: str, batch_tokens: int, steps: int) -> float | None:
    try:
        from elmo.model.bilm import BiLM
        from elmo.model.config import BiLMConfig
        from elmo.params import load_params
    except ImportError as err:
        print(f"# no biLM to compare with ({err})")
        return None
    preset = load_params(REPO / "params.yaml").pretrain.presets[preset_name]
    config = BiLMConfig(vocab_size=vocab.size, n_chars=vocab.char_size, max_chars=vocab.max_chars_per_token,
                        **preset.model.model_dump())
    model = BiLM(config).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = iter(make_loader(ds, max_tokens=batch_tokens, shuffle=True, seed=1))
    batch = next(loader)  # warm-up step, not timed
    model.loss(model(batch.chars, batch.mask), batch.fwd_targets, batch.bwd_targets).loss.backward()
    tokens, t0 = 0, time.perf_counter()
    for _ in range(steps):
        batch = next(loader)
        opt.zero_grad()
        loss = model.loss(model(batch.chars, batch.mask), batch.fwd_targets, batch.bwd_targets).loss
        loss.backward()
        opt.step()
        tokens += int(batch.mask.sum())
    return tokens / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab-dir", type=Path, default=REPO / "data/processed/vocab")
    ap.add_argument("--arrays-dir", type=Path, default=REPO / "data/processed/arrays")
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--num-workers", type=int, nargs="+", default=[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    vocab = Vocabulary.load(args.vocab_dir)
    ds = SentenceDataset(args.arrays_dir, "train", vocab)
    print(f"# {vocab}; train: {len(ds):,} sentences, {int(ds.lengths.sum()):,} words; "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print("| what | tokens/s | batches | seconds | padding |")
    print("|---|---:|---:|---:|---:|")
    best = 0.0
    for w in args.num_workers:
        dt, tokens, batches, pad = loader_epoch(ds, args.batch_tokens, w)
        best = max(best, tokens / dt)
        print(f"| loader, one epoch, max_tokens={args.batch_tokens}, num_workers={w} | {tokens / dt:,.0f} | "
              f"{batches:,} | {dt:.1f} | {pad:.1%} |")
    rate = train_rate(vocab, ds, args.preset, args.batch_tokens, args.train_steps)
    if rate:
        print(f"| biLM `{args.preset}` training step (forward+backward+Adam), CPU | {rate:,.0f} | "
              f"{args.train_steps} | | |")
        print(f"\nloader / training: {best / rate:,.0f}x")


if __name__ == "__main__":
    main()
