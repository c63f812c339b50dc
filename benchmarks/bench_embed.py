"""ELMo embedding throughput on CPU: tokens/s of the frozen biLM's layers, by batch size and threads.

    .venv/bin/python benchmarks/bench_embed.py [--model models/bilm] [--texts N]

Texts: YNAT dev headlines (data/task/ynat, else the offline mirror). Baseline, side by side:
the biLM's token encoder alone (char-CNN + highway), i.e. ELMo's layer 0 without the LSTMs.
Tokenization (MeCab) is timed separately; it is not part of the biLM figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `elmo finetune` does (see elmo/stages/finetune.py)

import torch

from elmo.data.batch import encode_batch

REPO = Path(__file__).resolve().parents[1]


def headlines(n: int) -> list[str]:
    for path in (REPO / "data/task/ynat/ynat-v1.1_dev.json",
                 Path(os.environ.get("ELMO_SHARED_DATA", REPO.parent / "shared/data"))
                 / "klue/ynat-v1.1/ynat-v1.1_dev.json"):
        if path.is_file():
            return [r["title"] for r in json.loads(path.read_text(encoding="utf-8"))][:n]
    raise SystemExit("no YNAT dev file: run `elmo fetch_task` or set ELMO_SHARED_DATA")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(REPO / "models/bilm"))
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch-tokens", default="1024,4096,16384")
    args = ap.parse_args()

    from elmo.embed.elmo import Elmo

    elmo = Elmo.load(args.model)
    texts = headlines(args.texts)
    t0 = time.perf_counter()
    tokens = elmo.tokenize(texts)
    tok_s = time.perf_counter() - t0
    n_tok = sum(len(t) for t in tokens)
    cfg = elmo.bilm.config
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    print(f"biLM: P={cfg.projection_dim} H={cfg.lstm_dim} L={cfg.n_layers} filters={cfg.n_filters}; "
          f"{len(texts)} headlines, {n_tok} tokens")
    print(f"tokenize (MeCab): {tok_s:.2f}s, {n_tok / tok_s:,.0f} tokens/s")
    print("| threads | batch tokens | what | seconds | tokens/s | vs baseline |")
    print("|---|---|---|---|---|---|")
    for threads in [int(x) for x in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for bt in [int(x) for x in args.batch_tokens.split(",")]:
            elmo.max_batch_tokens = bt
            with torch.no_grad():  # baseline: the token encoder only (layer 0)
                t0 = time.perf_counter()
                for idx in elmo.batches(tokens):
                    b = encode_batch(elmo.vocab, [tokens[i] for i in idx])
                    elmo.bilm.token_encoder(b.chars, b.mask)
                base = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in elmo.iter_layers(tokens):
                pass
            full = time.perf_counter() - t0
            print(f"| {threads} | {bt} | token encoder only (baseline) | {base:.2f} | {n_tok / base:,.0f} | 1x |")
            print(f"| {threads} | {bt} | all L+1 layers (Elmo.iter_layers) | {full:.2f} | {n_tok / full:,.0f} | "
                  f"{full / base:.1f}x |")


if __name__ == "__main__":
    main()
