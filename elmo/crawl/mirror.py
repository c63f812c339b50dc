"""Mirroring the archive's month files (the crawl stage's work, elmo/stages/crawl.py orchestrates):
the month selection from the listing, one crawl at a time per directory (a lock beside it), the
concurrent verified downloads (a thread pool that stops on Ctrl-C/SIGTERM), leftovers of a killed
run, and pruning months no longer selected.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from tqdm import tqdm

from elmo.crawl.fetch import FetchError, FetchResult, NotFound, fetch_bytes, fetch_file
from elmo.crawl.manifest import MANIFEST_NAME, Manifest
from elmo.crawl.retry import RetryPolicy
from elmo.crawl.source import LISTING_NAME, MONTH_FILE_RE, Source, month_file, month_of, overlap, parse_listing
from elmo.crawl.verify import verify_month_file
from elmo.errors import Interrupted, StageError


def select_months(listed: list[str], months: list[str], month_from: str | None,
                  month_to: str | None) -> tuple[list[str], list[str]]:
    """(names to fetch, explicitly requested months the listing does not name)."""
    if months:
        wanted = list(dict.fromkeys(month_file(m) for m in months))
        unlisted = [n for n in wanted if n not in set(listed)]
        wanted = [n for n in wanted if n not in unlisted]
    else:
        wanted, unlisted = list(listed), []
    if month_from:
        wanted = [n for n in wanted if month_of(n) >= month_from]
    if month_to:
        wanted = [n for n in wanted if month_of(n) <= month_to]
    return wanted, unlisted


def remove_leftovers(out: Path) -> int:
    """Temporaries of an interrupted (killed) earlier run: ``.petitions_…tmp``, ``.manifest.json…tmp``."""
    n = 0
    for pattern in (".petitions_*.tmp", f".{MANIFEST_NAME}.*.tmp"):
        for leftover in out.glob(pattern):
            leftover.unlink(missing_ok=True)
            n += 1
    return n


@contextlib.contextmanager
def exclusive(out: Path):
    """One crawl at a time per output directory (the lock file sits beside it, not inside)."""
    lock_path = out.parent / f".{out.name}.crawl.lock"
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StageError(f"{out}: another crawl is writing here (lock {lock_path})") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def fetch_all(
    names: list[str],
    src: Source,
    out: Path,
    manifest: Manifest,
    policy: RetryPolicy,
    client,
    *,
    concurrency: int,
    allow_missing: bool,
) -> tuple[dict[str, FetchResult], list[str], dict[str, str]]:
    """Fetch ``names`` into ``out``, ``concurrency`` at a time, recording each in ``manifest``:
    (results by name, names missing at the source, failures by name)."""
    results: dict[str, FetchResult] = {}
    missing: list[str] = []
    failures: dict[str, str] = {}
    cancel = threading.Event()
    files_bar = tqdm(total=len(names), desc="crawl: months", unit="file", position=0)
    bytes_bar = tqdm(desc="crawl: bytes", unit="B", unit_scale=True, unit_divisor=1024, position=1)

    def job(name: str) -> FetchResult:
        return fetch_file(
            src.locate(name),
            out / name,
            verify=verify_month_file,
            policy=policy,
            previous=manifest.files.get(name),
            client=client,
            progress=bytes_bar.update,
            cancel=cancel,
        )

    def collect(fut, name: str) -> None:
        try:
            res = fut.result()
        except NotFound as err:
            missing.append(name)
            if not allow_missing:
                failures[name] = (f"{err}: listed but missing at the source "
                                  "(crawl.allow_missing_months: true goes on without it)")
        except FetchError as err:
            failures[name] = str(err)
        else:
            results[name] = res
            manifest.record(name, res.entry())
        files_bar.update(1)
        files_bar.set_postfix(fetched=sum(r.status == "fetched" for r in results.values()), failed=len(failures))

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="crawl")
    try:
        futures = {pool.submit(job, name): name for name in names}
        pending = set(futures)
        while pending:
            # With a timeout, so that the main thread runs its signal handlers (Ctrl-C, SIGTERM)
            # even when the signal was delivered to a worker thread.
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            for fut in done:
                collect(fut, futures[fut])
    except BaseException:
        cancel.set()  # workers stop at their next chunk or wait; their temporaries are removed
        if client is not None:
            client.close()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bytes_bar.close()
        files_bar.close()
    return results, missing, failures


def check_out_dir(src: Source, out: Path, out_dir: str, source: str) -> None:
    """Refuse an ``out_dir`` that is, lies inside, or contains a local source (crawl would write or
    delete files of the source)."""
    how = overlap(src.base, out) if src.kind == "local" else None
    if how:
        raise StageError(f"crawl.out_dir {out_dir!r} {how} crawl.source {source!r}; crawl never writes or "
                         "deletes anything in its source: choose an out_dir outside it")


def selection(src: Source, policy: RetryPolicy, client, *, months: list[str], month_from: str | None,
              month_to: str | None, allow_missing: bool) -> tuple[list[str], list[str]]:
    """(month files to fetch, requested months the listing lacks), from the source's listing."""
    listing_url = src.locate(LISTING_NAME)
    try:
        text = fetch_bytes(listing_url, policy=policy, client=client).decode("utf-8")
        listed = parse_listing(text, listing_url)
    except UnicodeDecodeError as err:
        raise StageError(f"crawl: the listing {listing_url}: not UTF-8 ({err.reason})") from None
    except (FetchError, ValueError) as err:  # their messages name the listing already
        raise StageError(f"crawl: the listing: {err}") from None
    names, unlisted = select_months(listed, months, month_from, month_to)
    if unlisted and not allow_missing:
        raise StageError(
            f"crawl.months: {', '.join(month_of(n) for n in unlisted)} not in the listing {listing_url} "
            "(set crawl.allow_missing_months: true to go on without them)"
        )
    if not names:
        raise StageError(
            f"crawl: no months selected from {len(listed)} listed in {listing_url} "
            f"(months={months}, month_from={month_from}, month_to={month_to})"
        )
    return names, unlisted


def interrupted(err: BaseException, manifest: Manifest | None, names: list[str], out: Path) -> Interrupted:
    """The Interrupted error of a crawl stopped by Ctrl-C/SIGTERM; marks the manifest incomplete."""
    why = str(err) or "Ctrl-C"
    if manifest is None:
        return Interrupted(f"crawl: interrupted ({why}) while reading the listing; nothing in {out} was changed")
    kept = sorted(n for n in names if n in manifest.files and (out / n).is_file())
    left = {n: "not fetched (interrupted)" for n in names if n not in kept}
    manifest.mark_incomplete("interrupted", left)
    return Interrupted(f"crawl: interrupted ({why}); kept {len(kept)} complete month(s) in {out} "
                       f"({', '.join(month_of(n) for n in kept) or 'none'}), no partial file; "
                       f"{len(left)} not fetched. A rerun resumes; clean refuses until then.")



def prune(out: Path, keep: set[str], owned: set[str]) -> tuple[list[str], list[str]]:
    """Make ``out`` mirror the selection: remove month files not in ``keep`` that crawl wrote
    (``owned``: the manifest's); report the others, never touch them. (removed, not ours)."""
    removed, foreign = [], []
    for path in sorted(out.iterdir()):
        if MONTH_FILE_RE.fullmatch(path.name) and path.name not in keep:
            if path.name in owned and path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(path.name)
            else:
                foreign.append(path.name)
    return removed, foreign
