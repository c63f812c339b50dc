"""Tokenize throughput on the petitions mirror, in characters per second.

    python benchmarks/bench_tokenize.py [--mirror ../shared/data/petitions_archive] [--workers 1 2]
                                        [--max-chars N] [--sample-sentences 20000]

Measures, on the same text:

* the stage's own code path (``elmo.text.parallel.tokenize_to_parquet``: sentence splitting, MeCab-ko,
  long-sentence cuts, Arrow/parquet output) with each ``--workers`` count — wall-clock chars/s;
* the ceiling: MeCab-ko's ``Tagger.parse`` alone on the split sentences, one core;
* the baseline side by side: konlpy's ``Mecab.pos`` vs the fast path on a sample of sentences.

Characters are those of the petitions' title + content (Python ``len``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from elmo.text.mecab import MecabTagger, konlpy_mecab  # noqa: E402
from elmo.text.parallel import available_cpus, tokenize_to_parquet  # noqa: E402
from elmo.text.sentences import split_sentences  # noqa: E402
from elmo.text.tokenizer import Tokenizer  # noqa: E402


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the workers), user + system."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def load_mirror(mirror: Path, max_chars: int | None):
    ids, splits, titles, contents = [], [], [], []
    chars = 0
    for path in sorted(mirror.glob("petitions_*")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                ids.append(len(ids))
                splits.append(("train", "train", "train", "train", "valid", "test")[len(ids) % 6])
                titles.append(r["title"])
                contents.append(r["content"])
                chars += len(r["title"]) + len(r["content"])
                if max_chars and chars >= max_chars:
                    return ids, splits, [titles, contents], chars
    return ids, splits, [titles, contents], chars


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "data" / "petitions_archive")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--max-chars", type=int, default=None, help="use only the first N characters of the mirror")
    ap.add_argument("--sample-sentences", type=int, default=20000)
    args = ap.parse_args()

    ids, splits, texts, chars = load_mirror(args.mirror, args.max_chars)
    print(f"# {len(ids):,} petitions, {chars:,} chars; {platform.processor() or platform.machine()}, "
          f"{available_cpus()} cpus available, load average {os.getloadavg()[0]:.1f}")
    tok = Tokenizer()
    rows = []
    for w in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            cpu0 = _cpu()
            t0 = time.perf_counter()
            stats = tokenize_to_parquet(ids, splits, texts, tok, Path(tmp), workers=w, progress=False)
            dt = time.perf_counter() - t0
            cpu = _cpu() - cpu0
        tokens = sum(s["tokens"] for s in stats.values())
        rows.append((f"tokenize stage path, {w} worker{'s' if w > 1 else ''}", chars / dt, dt, tokens, cpu))

    sentences = [s for col in texts for t in col for s in split_sentences(t)]
    sent_chars = sum(map(len, sentences))
    fast = MecabTagger()
    raw = fast._tagger
    t0 = time.process_time()
    for s in sentences:
        raw.parse(s)
    dt = time.process_time() - t0
    rows.append(("MeCab Tagger.parse alone, 1 core", None, None, None, dt, sent_chars))

    sample = sentences[: args.sample_sentences]
    sample_chars = sum(map(len, sample))
    ref = konlpy_mecab()
    t0 = time.process_time()
    ref_out = [ref.pos(s) for s in sample]
    dt_ref = time.process_time() - t0
    t0 = time.process_time()
    fast_out = [list(zip(*fast.pos(s))) for s in sample]
    dt_fast = time.process_time() - t0
    same = sum(a == b for a, b in zip(ref_out, fast_out))
    rows.append((f"baseline: konlpy Mecab.pos, {len(sample)} sentences, 1 core", None, None, None, dt_ref,
                 sample_chars))
    rows.append(("fast path MecabTagger.pos, same sentences, 1 core", None, None, None, dt_fast, sample_chars))

    print("| what | wall chars/s | wall s | tokens | CPU s (all processes) | chars per CPU-second |")
    print("|---|---:|---:|---:|---:|---:|")
    for what, rate, dt, tokens, cpu, *n in rows:
        n_chars = n[0] if n else chars
        cells = [f"{rate:,.0f}" if rate else "", f"{dt:.1f}" if dt else "", f"{tokens:,}" if tokens else "",
                 f"{cpu:.1f}", f"{n_chars / cpu:,.0f}"]
        print(f"| {what} | {' | '.join(cells)} |")
    print(f"\nfast path / konlpy: {dt_ref / dt_fast:.2f}x; identical output on {same}/{len(sample)} sentences")
    if args.workers[:2] == [1, 2]:
        print(f"2 workers / 1 worker (wall): {rows[1][1] / rows[0][1]:.2f}x")

if __name__ == "__main__":
    main()
