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

import time
from pathlib import Path
from typing import Any

from elmo.crawl.fetch import make_client
from elmo.crawl.manifest import MANIFEST_NAME, Manifest
from elmo.crawl.mirror import check_out_dir, exclusive, fetch_all, interrupted, prune, remove_leftovers, selection
from elmo.crawl.retry import RetryPolicy
from elmo.crawl.source import Source
from elmo.errors import StageError, signals_as_interrupt
from elmo.params import Params
from elmo.stages import stage_report


def run(params: Params, root: Path) -> dict[str, Any]:
    p = params.crawl
    try:
        src = Source.parse(p.source, root)
    except ValueError as err:
        raise StageError(f"crawl.source: {err}") from None
    out = root / p.out_dir
    check_out_dir(src, out, p.out_dir, p.source)
    out.mkdir(parents=True, exist_ok=True)
    policy = RetryPolicy.from_params(p)
    t0 = time.monotonic()
    with exclusive(out), signals_as_interrupt():
        leftovers = remove_leftovers(out)
        client = make_client(policy, max_connections=p.concurrency) if src.kind == "http" else None
        names: list[str] = []
        manifest: Manifest | None = None
        try:
            names, unlisted = selection(src, policy, client, months=p.months, month_from=p.month_from,
                                        month_to=p.month_to, allow_missing=p.allow_missing_months)
            manifest = Manifest.load(out / MANIFEST_NAME, p.source)
            manifest.source = p.source
            owned = set(manifest.files)  # what earlier crawls wrote here: the only files it may remove
            # Before the first byte lands: a crawl killed outright (kill -9) leaves this marker, so
            # clean refuses the directory until a crawl finishes (retain() clears it).
            manifest.mark_incomplete("running", {n: "not checked yet (crawl running or killed)" for n in names})
            results, missing, failures = fetch_all(names, src, out, manifest, policy, client, concurrency=p.concurrency,
                                                   allow_missing=p.allow_missing_months)
        except KeyboardInterrupt as err:
            raise interrupted(err, manifest, names, out) from None
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
        removed, foreign = prune(out, set(results), owned)
        manifest.retain(set(results), missing=[*missing, *unlisted])

    seconds = time.monotonic() - t0
    transferred = sum(r.transferred for r in results.values())
    fetched = sorted(n for n, r in results.items() if r.status == "fetched")
    return stage_report("crawl", params, {
        "source": p.source,
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
    })
