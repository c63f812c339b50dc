"""Time the crawl and clean stages on the offline mirror, next to plain baselines.

    python benchmarks/bench_crawl_clean.py [--mirror ../shared/data] [--repeat 3]

crawl (HTTP)     the mirror served on 127.0.0.1, into an empty directory (verify, sha256, atomic
                 rename, manifest) — baseline: plain sequential httpx GETs into memory
crawl (rerun)    the same again: conditional requests only, nothing downloaded
crawl (local)    the mirror as a local directory source
clean            the crawled months -> parquet — baseline: polars.read_ndjson of the same
                 files (parsing only: no validation, normalisation, dedupe or split)

Prints one line per measurement (median of --repeat runs) and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: bars would clutter the figures

import httpx
import polars as pl

from elmo.httpserve import serve_directory
from elmo.params import parse_params
from elmo.stages import clean, crawl

REPO = Path(__file__).resolve().parents[1]


def _median_time(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", load average {:.1f}".format(os.getloadavg()[0]) if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {os.cpu_count()} cores visible{load}, Python {platform.python_version()}, polars {pl.__version__}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", type=Path,
                    default=Path(os.environ.get("ELMO_SHARED_DATA", REPO.parent / "shared" / "data")))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    archive = args.mirror / "petitions_archive"
    if not (archive / "files").exists():
        print(f"no petitions archive at {archive}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)

    months = (archive / "files").read_text().split()
    total_bytes = sum((archive / m).stat().st_size for m in months)
    results: dict[str, dict] = {}

    def line(name: str, seconds: float, **figures) -> None:
        results[name] = {"seconds": round(seconds, 3), **figures}
        extra = "  ".join(f"{k}={v}" for k, v in figures.items())
        print(f"{name:<22} {seconds:8.3f} s  {extra}", flush=True)

    with serve_directory(args.mirror) as url, tempfile.TemporaryDirectory(prefix="bench-crawl-") as tmp:
        tmp = Path(tmp)
        source = f"{url}petitions_archive/"

        def plain_get() -> int:
            with httpx.Client() as c:
                return sum(len(c.get(source + m).content) for m in months)

        s, n = _median_time(plain_get, args.repeat)
        line("baseline: httpx GET", s, mb_per_s=round(n / 1e6 / s, 1))
        base_get = s

        def fresh_crawl():
            root = Path(tempfile.mkdtemp(dir=tmp))
            p = parse_params({"crawl": {"source": source, "concurrency": args.concurrency}})
            return crawl.run(p, root), root

        s, (report, root) = _median_time(fresh_crawl, args.repeat)
        line("crawl (HTTP)", s, mb_per_s=round(total_bytes / 1e6 / s, 1), files=report["months"],
             vs_baseline=f"{s / base_get:.2f}x")
        p_http = parse_params({"crawl": {"source": source, "concurrency": args.concurrency}})
        s, report = _median_time(lambda: crawl.run(p_http, root), args.repeat)
        assert report["fetched"] == [], report
        line("crawl (rerun)", s, fetched=0, checked_mb_per_s=round(total_bytes / 1e6 / s, 1))

        def local_crawl():
            r = Path(tempfile.mkdtemp(dir=tmp))
            return crawl.run(parse_params({"crawl": {"source": str(archive)}}), r)

        s, _ = _median_time(local_crawl, args.repeat)
        line("crawl (local dir)", s, mb_per_s=round(total_bytes / 1e6 / s, 1))

        raw = root / "data/raw/petitions"
        s, df = _median_time(lambda: pl.read_ndjson([raw / m for m in months]), args.repeat)
        line("baseline: read_ndjson", s, rows_per_s=round(df.height / s), mb_per_s=round(total_bytes / 1e6 / s, 1))
        base_parse = s
        pc = parse_params({})
        s, report = _median_time(lambda: clean.run(pc, root), args.repeat)
        line("clean", s, rows_per_s=round(report["read"] / s), mb_per_s=round(total_bytes / 1e6 / s, 1),
             rows=report["read"], vs_baseline=f"{s / base_parse:.2f}x")

    summary = {"machine": _machine(), "months": len(months), "bytes": total_bytes, "repeat": args.repeat,
               "results": results}
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
