"""crawl: mirror the archive's month files into ``crawl.out_dir`` with a manifest.

Reads the source's ``files`` listing, selects months (all, ``months``, or ``month_from`` ..
``month_to``), and fetches each selected month with :func:`elmo.crawl.fetch_file` — streamed to a
temporary file, verified (every line a JSON object with the archive's keys), then renamed —
``concurrency`` at a time, with a progress bar for files and bytes. Incremental: a month whose
bytes are unchanged at the source (HTTP validators, or sha256 for a local source) is not
downloaded again and its manifest entry stays as it was. The output directory ends up holding
exactly the selected months plus ``manifest.json``: a month no longer selected is removed, but only
if the manifest says crawl wrote it (a file crawl did not write is never deleted).

Nothing in a local source is ever written or deleted: an ``out_dir`` that is the source, lies
inside it or contains it is refused before anything is touched.

Fails (StageError) if a month cannot be fetched or verified after the retries, or if a listed
month is missing (404) and ``allow_missing_months`` is false — after finishing every other month,
so a rerun only fetches what is still missing.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from tqdm import tqdm

from elmo.crawl.fetch import FetchError, FetchResult, NotFound, fetch_bytes, fetch_file, make_client
from elmo.crawl.manifest import MANIFEST_NAME, Manifest
from elmo.crawl.retry import RetryPolicy
from elmo.crawl.source import LISTING_NAME, MONTH_FILE_RE, Source, month_file, month_of, overlap, parse_listing
from elmo.crawl.verify import verify_month_file
from elmo.errors import Interrupted, StageError, signals_as_interrupt
from elmo.params import Params
from elmo.params.crawl import CrawlParams


def select_months(listed: list[str], p: CrawlParams) -> tuple[list[str], list[str]]:
    """(names to fetch, explicitly requested months the listing does not name)."""
    if p.months:
        wanted = list(dict.fromkeys(month_file(m) for m in p.months))
        unlisted = [n for n in wanted if n not in set(listed)]
        wanted = [n for n in wanted if n not in unlisted]
    else:
        wanted, unlisted = list(listed), []
    if p.month_from:
        wanted = [n for n in wanted if month_of(n) >= p.month_from]
    if p.month_to:
        wanted = [n for n in wanted if month_of(n) <= p.month_to]
    return wanted, unlisted


def _remove_leftovers(out: Path) -> int:
    """Temporaries of an interrupted (killed) earlier run: ``.petitions_…tmp``, ``.manifest.json…tmp``."""
    n = 0
    for pattern in (".petitions_*.tmp", f".{MANIFEST_NAME}.*.tmp"):
        for leftover in out.glob(pattern):
            leftover.unlink(missing_ok=True)
            n += 1
    return n


@contextlib.contextmanager
def _exclusive(out: Path):
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


def _fetch_all(
    names: list[str],
    src: Source,
    out: Path,
    manifest: Manifest,
    p: CrawlParams,
    policy: RetryPolicy,
    client,
) -> tuple[dict[str, FetchResult], list[str], dict[str, str]]:
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
            if not p.allow_missing_months:
                failures[name] = (f"{err}: listed but missing at the source "
                                  "(crawl.allow_missing_months: true goes on without it)")
        except FetchError as err:
            failures[name] = str(err)
        else:
            results[name] = res
            manifest.record(name, res.entry())
        files_bar.update(1)
        files_bar.set_postfix(fetched=sum(r.status == "fetched" for r in results.values()), failed=len(failures))

    pool = ThreadPoolExecutor(max_workers=p.concurrency, thread_name_prefix="crawl")
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


def check_out_dir(src: Source, out: Path, p: CrawlParams) -> None:
    """Refuse an ``out_dir`` that is, lies inside, or contains a local source (crawl would write or
    delete files of the source)."""
    how = overlap(src.base, out) if src.kind == "local" else None
    if how:
        raise StageError(f"crawl.out_dir {p.out_dir!r} {how} crawl.source {p.source!r}; crawl never writes or "
                         "deletes anything in its source: choose an out_dir outside it")


def _selection(src: Source, p: CrawlParams, policy: RetryPolicy, client) -> tuple[list[str], list[str]]:
    """(month files to fetch, requested months the listing lacks), from the source's listing."""
    listing_url = src.locate(LISTING_NAME)
    try:
        text = fetch_bytes(listing_url, policy=policy, client=client).decode("utf-8")
        listed = parse_listing(text, listing_url)
    except UnicodeDecodeError as err:
        raise StageError(f"crawl: the listing {listing_url}: not UTF-8 ({err.reason})") from None
    except (FetchError, ValueError) as err:  # their messages name the listing already
        raise StageError(f"crawl: the listing: {err}") from None
    names, unlisted = select_months(listed, p)
    if unlisted and not p.allow_missing_months:
        raise StageError(
            f"crawl.months: {', '.join(month_of(n) for n in unlisted)} not in the listing {listing_url} "
            "(set crawl.allow_missing_months: true to go on without them)"
        )
    if not names:
        raise StageError(
            f"crawl: no months selected from {len(listed)} listed in {listing_url} "
            f"(months={p.months}, month_from={p.month_from}, month_to={p.month_to})"
        )
    return names, unlisted


def _interrupted(err: BaseException, manifest: Manifest | None, names: list[str], out: Path) -> Interrupted:
    why = str(err) or "Ctrl-C"
    if manifest is None:
        return Interrupted(f"crawl: interrupted ({why}) while reading the listing; nothing in {out} was changed")
    kept = sorted(n for n in names if n in manifest.files and (out / n).is_file())
    left = {n: "not fetched (interrupted)" for n in names if n not in kept}
    manifest.mark_incomplete("interrupted", left)
    return Interrupted(f"crawl: interrupted ({why}); kept {len(kept)} complete month(s) in {out} "
                       f"({', '.join(month_of(n) for n in kept) or 'none'}), no partial file; "
                       f"{len(left)} not fetched. A rerun resumes; clean refuses until then.")


def run(params: Params, root: Path) -> dict[str, Any]:
    p = params.crawl
    try:
        src = Source.parse(p.source, root)
    except ValueError as err:
        raise StageError(f"crawl.source: {err}") from None
    out = root / p.out_dir
    check_out_dir(src, out, p)
    out.mkdir(parents=True, exist_ok=True)
    policy = RetryPolicy.from_params(p)
    t0 = time.monotonic()
    with _exclusive(out), signals_as_interrupt():
        leftovers = _remove_leftovers(out)
        client = make_client(policy, max_connections=p.concurrency) if src.kind == "http" else None
        names: list[str] = []
        manifest: Manifest | None = None
        try:
            names, unlisted = _selection(src, p, policy, client)
            manifest = Manifest.load(out / MANIFEST_NAME, p.source)
            manifest.source = p.source
            owned = set(manifest.files)  # what earlier crawls wrote here: the only files it may remove
            # Before the first byte lands: a crawl killed outright (kill -9) leaves this marker, so
            # clean refuses the directory until a crawl finishes (retain() clears it).
            manifest.mark_incomplete("running", {n: "not checked yet (crawl running or killed)" for n in names})
            results, missing, failures = _fetch_all(names, src, out, manifest, p, policy, client)
        except KeyboardInterrupt as err:
            raise _interrupted(err, manifest, names, out) from None
        finally:
            if client is not None:
                client.close()
        if failures:
            manifest.mark_incomplete("failed", failures)
            lines = "\n".join(f"  {name}: {msg}" for name, msg in sorted(failures.items()))
            raise StageError(
                f"crawl: {len(failures)} of {len(names)} months failed; the {len(results)} others are "
                f"saved and a rerun resumes:\n{lines}"
            )
        # The directory now mirrors the selection: drop months no longer selected or gone at the
        # source — only those the manifest says crawl wrote; anything else is reported, not touched.
        keep = set(results)
        removed, foreign = [], []
        for path in sorted(out.iterdir()):
            if MONTH_FILE_RE.fullmatch(path.name) and path.name not in keep:
                if path.name in owned and path.is_file() and not path.is_symlink():
                    path.unlink()
                    removed.append(path.name)
                else:
                    foreign.append(path.name)
        manifest.retain(keep, missing=[*missing, *unlisted])

    seconds = time.monotonic() - t0
    transferred = sum(r.transferred for r in results.values())
    fetched = sorted(n for n, r in results.items() if r.status == "fetched")
    return {
        "stage": "crawl",
        "source": p.source,
        "out_dir": str(out),
        "months": len(results),
        "fetched": fetched,
        "unchanged": len(results) - len(fetched),
        "missing": sorted([*missing, *unlisted]),
        "removed": removed,
        "not_ours": foreign,  # month files crawl did not write: left alone (clean refuses them)
        "leftovers_removed": leftovers,
        "retries": sum(r.attempts - 1 for r in results.values()),
        "bytes": sum(r.bytes for r in results.values()),
        "lines": sum(int(manifest.files[n].get("lines", 0)) for n in results),
        "transferred_bytes": transferred,
        "seconds": round(seconds, 3),
        "mb_per_s": round(transferred / 1e6 / seconds, 2) if seconds > 0 else None,
    }
