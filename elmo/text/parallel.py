"""Tokenize petitions over worker processes and stream the sentences into one parquet per split.

The petitions are cut into shards of consecutive rows (about ``SHARD_CHARS`` characters each);
worker processes (``spawn``ed, each with its own tagger) turn a shard into Arrow record batches,
and the parent writes them in shard order. Row groups have a fixed number of rows, so the output is
byte-identical whatever the number of workers (a test checks 1 vs 2) — and whatever the parts it
was assembled from: ``merge_parts`` streams per-shard parquet files (the Dask fan-out of
``elmo.stages.tokenize``) into the same bytes.

Output schema, per split: ``petition_idx`` int64, ``sentence_idx`` int32 (0-based within the
petition, over its fields in order, e.g. title then content), ``tokens`` list<string>.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from elmo.contracts import SPLITS, sentences_arrow_schema
from elmo.errors import StageError
from elmo.text.tokenizer import Tokenizer

SCHEMA = sentences_arrow_schema()
SHARD_CHARS = 100_000
ROW_GROUP_ROWS = 50_000
STAT_KEYS = ("petitions", "petitions_without_tokens", "null_fields", "chars", "sentences", "sentences_cut", "tokens")


@dataclass
class Shard:
    """Consecutive petitions: ids, split names and, per field, the texts (None = null)."""

    start: int  # row number of the first petition in the input (for messages)
    petition_idx: list[int]
    split: list[str]
    texts: list[list[str | None]]  # [field][row]


@dataclass
class ShardResult:
    batches: dict[str, pa.RecordBatch]
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    chars: int = 0


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int) -> int:
    """``workers`` processes, 0 meaning every core this process may use."""
    return available_cpus() if workers == 0 else workers


def make_shards(petition_idx: Sequence[int], split: Sequence[str], texts: Sequence[Sequence[str | None]],
                shard_chars: int | None = None) -> list[Shard]:
    shard_chars = shard_chars or SHARD_CHARS
    shards, start, size = [], 0, 0
    n = len(petition_idx)
    for i in range(n):
        size += sum(len(t[i]) for t in texts if t[i] is not None)
        if size >= shard_chars or i == n - 1:
            shards.append(Shard(start, list(petition_idx[start:i + 1]), list(split[start:i + 1]),
                                [list(t[start:i + 1]) for t in texts]))
            start, size = i + 1, 0
    return shards


_TOKENIZER: Tokenizer | None = None


def _init_worker(config: dict) -> None:
    global _TOKENIZER
    # The parent decides when workers stop (stop_workers): Ctrl-C in a terminal reaches the whole
    # process group, and a worker's KeyboardInterrupt would only print a traceback. Should the parent
    # die without cleaning up (kill -9), Linux ends the worker too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    _TOKENIZER = Tokenizer.from_config(config)
    _TOKENIZER.tagger  # load the dictionary / start the JVM once per process


def tokenize_shard(shard: Shard) -> ShardResult:
    """Tokenize one shard (in a worker, or in the parent when there is one worker)."""
    tok = _TOKENIZER
    assert tok is not None, "worker not initialised"
    cols: dict[str, tuple[list[int], list[int], list[int], list[str]]] = {}
    stats = {s: dict.fromkeys(STAT_KEYS, 0) for s in SPLITS}
    chars = 0
    for row, (pidx, split) in enumerate(zip(shard.petition_idx, shard.split)):
        pet, sent, offsets, flat = cols.setdefault(split, ([], [], [0], []))
        st = stats[split]
        st["petitions"] += 1
        n_sent = 0
        for texts in shard.texts:
            text = texts[row]
            if text is None:
                st["null_fields"] += 1
                continue
            st["chars"] += len(text)
            chars += len(text)
            sentences, cut = tok.analyse_text(text)
            st["sentences_cut"] += cut
            for tokens in sentences:
                pet.append(pidx)
                sent.append(n_sent)
                n_sent += 1
                flat.extend(tokens)
                offsets.append(len(flat))
        st["sentences"] += n_sent
        st["petitions_without_tokens"] += n_sent == 0
    batches = {}
    for split, (pet, sent, offsets, flat) in cols.items():
        stats[split]["tokens"] += len(flat)
        tokens = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, pa.string()))
        batches[split] = pa.RecordBatch.from_arrays(
            [pa.array(pet, pa.int64()), pa.array(sent, pa.int32()), tokens],
            schema=SCHEMA,
        )
    return ShardResult(batches, stats, chars)


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent dies (PR_SET_PDEATHSIG); elsewhere nothing."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def stop_workers(pool: ProcessPoolExecutor, timeout_s: float = 10.0) -> None:
    """End a pool's worker processes now (terminate, then kill) and wait for them: on an interrupt
    nothing they compute is wanted, and none may outlive the stage."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.terminate()
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def _result(fut: Future, poll_s: float = 0.25):
    """``fut.result()``, waiting in slices: a wait without a timeout would not run the main thread's
    signal handlers (Ctrl-C, SIGTERM) until the shard is done when the signal reached another thread."""
    while True:
        try:
            return fut.result(timeout=poll_s)
        except TimeoutError:
            if fut.done():
                raise  # the shard itself raised TimeoutError
            continue


def _ordered_results(shards: list[Shard], tokenizer: Tokenizer, workers: int) -> Iterator[ShardResult]:
    global _TOKENIZER
    if workers <= 1:
        _TOKENIZER = tokenizer
        for shard in shards:
            yield tokenize_shard(shard)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork: a started JVM or tagger must not be copied
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(tokenizer.config(),)) as pool:
        pending: collections.deque[tuple[Shard, Future]] = collections.deque()
        todo = iter(shards)
        try:
            for shard in todo:
                pending.append((shard, pool.submit(tokenize_shard, shard)))
                if len(pending) >= 3 * workers:
                    break
            while pending:
                shard, fut = pending.popleft()
                try:
                    result = _result(fut)
                except BrokenProcessPool as err:
                    raise StageError(f"a tokenize worker died (rows {shard.start}..): {err}") from err
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(tokenize_shard, nxt)))
                yield result
        except BaseException:  # Ctrl-C / SIGTERM (elmo.cli.run_stage), an error, or the consumer gone
            stop_workers(pool)
            raise
        finally:
            for _, fut in pending:
                fut.cancel()


class _SplitWriter:
    """Streams record batches into a parquet file in row groups of exactly ROW_GROUP_ROWS rows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")
        self.buffer: list[pa.RecordBatch] = []
        self.buffered = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self.buffer.append(batch)
        self.buffered += batch.num_rows
        if self.buffered >= ROW_GROUP_ROWS:
            table = pa.Table.from_batches(self.buffer, SCHEMA)
            full = (self.buffered // ROW_GROUP_ROWS) * ROW_GROUP_ROWS
            for off in range(0, full, ROW_GROUP_ROWS):
                # combine_chunks: the writer's bytes depend on the chunking of what it is given, so
                # every row group is written from one contiguous chunk whatever the shard layout.
                self.writer.write_table(table.slice(off, ROW_GROUP_ROWS).combine_chunks(),
                                        row_group_size=ROW_GROUP_ROWS)
            rest = table.slice(full)
            self.buffer = rest.combine_chunks().to_batches() if rest.num_rows else []
            self.buffered = rest.num_rows

    def close(self) -> None:
        if self.buffered:
            table = pa.Table.from_batches(self.buffer, SCHEMA).combine_chunks()
            self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.writer.close()


def tokenize_to_parquet(
    petition_idx: Sequence[int],
    split: Sequence[str],
    texts: Sequence[Sequence[str | None]],
    tokenizer: Tokenizer,
    out_dir: Path,
    workers: int = 0,
    progress: bool = True,
) -> dict[str, dict[str, int]]:
    """Tokenize the petitions into ``out_dir/{train,valid,test}.parquet``; returns counts per split.

    ``texts`` holds one sequence per field (e.g. titles, contents), aligned with ``petition_idx``.
    Every split gets a file, possibly with no rows.
    """
    workers = resolve_workers(workers)
    tokenizer.tagger  # fail here, clearly, if the tagger cannot start (dictionary, Java)
    shards = make_shards(petition_idx, split, texts)
    total_chars = sum(len(t) for col in texts for t in col if t is not None)
    stats = {s: dict.fromkeys(STAT_KEYS, 0) for s in SPLITS}
    writers = {s: _SplitWriter(Path(out_dir) / f"{s}.parquet") for s in SPLITS}
    try:
        with tqdm(total=total_chars, unit="char", unit_scale=True, desc=f"tokenize ({workers} workers)",
                  disable=not progress, mininterval=1.0) as bar, \
                contextlib.closing(_ordered_results(shards, tokenizer, workers)) as results:
            for result in results:
                for s, batch in result.batches.items():
                    writers[s].add(batch)
                for s, st in result.stats.items():
                    for k, v in st.items():
                        stats[s][k] += v
                bar.update(result.chars)
    finally:
        for w in writers.values():
            w.close()
    return stats


def merge_parts(part_dirs: Sequence[Path], out_dir: Path) -> None:
    """Concatenate ``{split}.parquet`` of each part directory, in order, into ``out_dir``."""
    writers = {s: _SplitWriter(Path(out_dir) / f"{s}.parquet") for s in SPLITS}
    try:
        for part in part_dirs:
            for s, writer in writers.items():
                path = Path(part) / f"{s}.parquet"
                if not path.is_file():
                    raise StageError(f"{path}: missing part (rerun the shard)")
                pf = pq.ParquetFile(path)
                if pf.schema_arrow != SCHEMA:
                    raise StageError(f"{path}: part has schema {pf.schema_arrow}, expected {SCHEMA}")
                for batch in pf.iter_batches(batch_size=ROW_GROUP_ROWS):
                    writer.add(batch)
    finally:
        for w in writers.values():
            w.close()
