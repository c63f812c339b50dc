"""Download one file, verified and atomically, with retries — the project's one downloader.

``fetch_file(url_or_path, dest, verify=...)`` streams an http(s) URL (or copies a local file) to a
temporary file beside ``dest``, hashing it on the way, runs ``verify`` on the temporary file, and
only then renames it onto ``dest`` (elmo.io.atomic_path): ``dest`` is either the old file, or
absent, or the complete verified new one — never partial. Given the ``previous`` entry of an
earlier fetch it is incremental: an http source is asked with ``If-None-Match`` /
``If-Modified-Since`` (and a 200 whose ETag, or Last-Modified and Content-Length, equal the old
ones is not downloaded again); a local source is compared by sha256. A Last-Modified is kept as a
validator only when it is strong (RFC 9110 §8.8.2.2: at least one second older than the response's
Date): a file rewritten within the second it was fetched would otherwise answer 304 for new bytes.
See elmo/crawl/retry.py for what is retried and how long it waits.

Bad lines: a ``verify`` that finds lines it cannot accept raises :class:`BadLines` (a
:class:`VerifyError` with the counts). Those bytes may be transport damage, so they are fetched
again; when the same bytes (same sha256) come back a second time — or at once, for a local
source — they are the source's own content and are accepted, the counts (``bad_lines``) landing
in the result's ``info`` and so in the manifest; the clean stage then quarantines those lines.

Used by the crawl stage for the petitions months and by finetune for the KLUE YNAT files.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from elmo.crawl.retry import RETRY_STATUSES, RetryPolicy, parse_http_date, parse_retry_after
from elmo.crawl.source import source_kind
from elmo.io import atomic_path, sha256_file
from elmo.log import get_logger

log = get_logger("crawl")

CHUNK = 1 << 16
USER_AGENT = "elmo-ko (+https://github.com/lovit/petitions_archive mirror client)"

Verify = Callable[[Path], "dict[str, Any] | None"]
Progress = Callable[[int], None]


class FetchError(RuntimeError):
    """A download failed for good; the message names the URL (or path) and the last reason."""


class NotFound(FetchError):
    """The source answered 404 (or the local file does not exist)."""


class VerifyError(ValueError):
    """Raised by a ``verify`` callable: the downloaded bytes are not what was expected."""


class BadLines(VerifyError):
    """Some lines are bad, the file as a whole is usable: accepted when the same bytes come back.

    ``info`` is what the file's entry records if it is accepted (e.g. ``{"lines": 40, "bad_lines": 1}``).
    """

    def __init__(self, message: str, info: dict[str, Any]) -> None:
        super().__init__(message)
        self.info = info
        self.sha256: str | None = None


class Cancelled(RuntimeError):
    """The caller's cancel event was set; the partial download was removed."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class FetchResult:
    url: str
    path: Path
    status: str  # "fetched" (new bytes written) or "unchanged" (dest kept as it was)
    bytes: int
    sha256: str
    fetched_at: str  # UTC time the current bytes were fetched (kept from `previous` if unchanged)
    etag: str | None = None
    last_modified: str | None = None
    content_length: int | None = None
    info: dict[str, Any] = field(default_factory=dict)  # what `verify` returned
    attempts: int = 1
    transferred: int = 0  # body bytes received over all attempts

    def entry(self) -> dict[str, Any]:
        """The manifest record: url, bytes, sha256, fetched_at, validators, and verify's info."""
        out: dict[str, Any] = {
            "url": self.url,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "fetched_at": self.fetched_at,
        }
        for key in ("etag", "last_modified", "content_length"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update(self.info)
        return out


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _describe(err: BaseException) -> str:
    if isinstance(err, httpx.TimeoutException):
        return f"timeout ({type(err).__name__})"
    if isinstance(err, httpx.TransportError):
        return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return str(err)


_ENTRY_KEYS = {"url", "bytes", "sha256", "fetched_at", "etag", "last_modified", "content_length"}


def _unchanged(url: str, dest: Path, previous: dict[str, Any]) -> FetchResult:
    info = {k: v for k, v in previous.items() if k not in _ENTRY_KEYS}
    return FetchResult(
        url=url,
        path=dest,
        status="unchanged",
        bytes=int(previous["bytes"]),
        sha256=previous["sha256"],
        fetched_at=previous.get("fetched_at") or _now(),
        etag=previous.get("etag"),
        last_modified=previous.get("last_modified"),
        content_length=previous.get("content_length"),
        info=info,
    )


def _previous_still_valid(url: str, dest: Path, previous: dict[str, Any] | None) -> bool:
    """True when ``previous`` describes exactly the bytes now at ``dest``, fetched from ``url``."""
    if not previous or previous.get("url") != url or not dest.is_file():
        return False
    try:
        return dest.stat().st_size == int(previous["bytes"]) and sha256_file(dest) == previous["sha256"]
    except (KeyError, TypeError, ValueError, OSError):
        return False


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")


def _write_verified(
    chunks,
    dest: Path,
    verify: Verify | None,
    progress: Progress | None,
    cancel: threading.Event | None,
    counter: list[int],
    accept_bad: Callable[[str], bool] = lambda sha: False,
) -> tuple[int, str, dict[str, Any]]:
    """Stream ``chunks`` to a temporary beside ``dest``; verify; rename. Returns (bytes, sha256, info).

    :class:`BadLines` from ``verify`` keeps the file when ``accept_bad(sha256)`` says so."""
    h = hashlib.sha256()
    n = 0
    try:
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as fh:
                for chunk in chunks:
                    _check_cancel(cancel)
                    fh.write(chunk)
                    h.update(chunk)
                    n += len(chunk)
                    counter[0] += len(chunk)
                    if progress:
                        progress(len(chunk))
            try:
                info = (verify(tmp) or {}) if verify else {}
            except BadLines as err:
                err.sha256 = h.hexdigest()
                if not accept_bad(err.sha256):
                    raise
                info = err.info
    except BaseException:
        if progress and n:
            progress(-n)  # the bar counts bytes kept, not bytes thrown away
        raise
    return n, h.hexdigest(), dict(info)


def _http_attempt(
    client: httpx.Client,
    url: str,
    dest: Path,
    verify: Verify | None,
    previous: dict[str, Any] | None,
    progress: Progress | None,
    cancel: threading.Event | None,
    counter: list[int],
    accept_bad: Callable[[str], bool],
) -> FetchResult:
    headers = {}
    if previous:
        if previous.get("etag"):
            headers["If-None-Match"] = previous["etag"]
        if previous.get("last_modified"):
            headers["If-Modified-Since"] = previous["last_modified"]
    with client.stream("GET", url, headers=headers) as r:
        if r.status_code == 304 and previous:
            return _unchanged(url, dest, previous)
        if r.status_code == 404:
            raise NotFound(f"{url}: HTTP 404 Not Found")
        if r.status_code in RETRY_STATUSES:
            raise _Retryable(f"HTTP {r.status_code}", parse_retry_after(r.headers.get("retry-after")))
        if r.status_code != 200:
            raise FetchError(f"{url}: HTTP {r.status_code} {r.reason_phrase}")
        etag = r.headers.get("etag")
        last_modified = _strong_last_modified(r.headers.get("last-modified"), r.headers.get("date"))
        length = r.headers.get("content-length")
        content_length = int(length) if length and length.isdigit() else None
        if previous and _same_validators(previous, etag, last_modified, content_length):
            return _unchanged(url, dest, previous)  # server ignored the conditional; headers say same
        n, sha, info = _write_verified(r.iter_bytes(CHUNK), dest, verify, progress, cancel, counter, accept_bad)
    if previous and sha == previous["sha256"]:  # same bytes, the server just could not tell us
        same = _unchanged(url, dest, previous)
        same.etag, same.last_modified, same.content_length = etag, last_modified, content_length
        return same
    return FetchResult(url, dest, "fetched", n, sha, _now(), etag, last_modified, content_length, info)


def _strong_last_modified(last_modified: str | None, date: str | None) -> str | None:
    """``last_modified`` if it is a strong validator, else None (RFC 9110 §8.8.2.2).

    A Last-Modified less than a second before the response's Date (or, without a Date, before now)
    is weak: the file may change again within that second and keep the same Last-Modified.
    """
    modified = parse_http_date(last_modified)
    if modified is None:
        return None
    sent = parse_http_date(date) or datetime.now(timezone.utc)
    return last_modified if (sent - modified).total_seconds() >= 1 else None


def _same_validators(previous: dict[str, Any], etag, last_modified, content_length) -> bool:
    if etag and previous.get("etag"):
        return etag == previous["etag"] and not etag.startswith("W/")
    if last_modified and previous.get("last_modified") and content_length is not None:
        return last_modified == previous["last_modified"] and content_length == previous.get("content_length")
    return False


def _local_chunks(path: Path):
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            yield block


def _local_attempt(
    src: Path,
    dest: Path,
    verify: Verify | None,
    previous: dict[str, Any] | None,
    progress: Progress | None,
    cancel: threading.Event | None,
    counter: list[int],
) -> FetchResult:
    if not src.is_file():
        raise NotFound(f"{src}: no such file")
    if previous and src.stat().st_size == int(previous["bytes"]) and sha256_file(src) == previous["sha256"]:
        return _unchanged(str(src), dest, previous)
    # A local file has no transport to damage it: its bad lines are its content.
    n, sha, info = _write_verified(_local_chunks(src), dest, verify, progress, cancel, counter, lambda sha: True)
    return FetchResult(str(src), dest, "fetched", n, sha, _now(), info=info)


def fetch_file(
    url_or_path: str | Path,
    dest: str | Path,
    *,
    verify: Verify | None = None,
    policy: RetryPolicy | None = None,
    previous: dict[str, Any] | None = None,
    client: httpx.Client | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    sleep: Callable[[float], None] | None = None,
) -> FetchResult:
    """Fetch ``url_or_path`` (http, https or a local path) to ``dest``, verified and atomically.

    verify:   ``verify(tmp_path) -> dict | None`` raising :class:`VerifyError` if the bytes are
              wrong (the download is retried, then rejected); what it returns lands in
              ``result.info`` and the manifest entry (e.g. ``{"lines": 494}``). :class:`BadLines`
              is retried too, but the same bytes a second time are accepted with its ``info``.
    previous: the ``entry()`` of an earlier fetch of the same URL to the same ``dest``; used only
              if ``dest`` still has exactly those bytes. Then nothing is downloaded when the
              source says (304 / validators / sha256) that it has not changed.
    progress: called with the number of bytes written (negative when a failed attempt's bytes
              are discarded).
    Raises :class:`NotFound` (404 / no such file, not retried), :class:`FetchError` (gave up;
    names the URL, the attempts and the last reason), :class:`Cancelled`.
    """
    policy = policy or RetryPolicy()
    dest = Path(dest)
    kind = source_kind(str(url_or_path))  # ValueError for ftp://, file://, ...
    url = str(url_or_path)
    prev = previous if _previous_still_valid(url, dest, previous) else None
    counter = [0]
    own_client = client is None and kind == "http"
    if own_client:
        client = make_client(policy)
    wait = sleep or ((lambda s: cancel.wait(s)) if cancel is not None else time.sleep)
    rejected: set[str] = set()  # sha256 of bodies refused for bad lines: seen again = the source's content
    try:
        for attempt in range(policy.retries + 1):
            _check_cancel(cancel)
            try:
                if kind == "http":
                    result = _http_attempt(client, url, dest, verify, prev, progress, cancel, counter,
                                           rejected.__contains__)
                else:
                    result = _local_attempt(Path(url), dest, verify, prev, progress, cancel, counter)
                result.attempts = attempt + 1
                result.transferred = counter[0]
                return result
            except (NotFound, Cancelled):
                raise
            except VerifyError as err:
                reason, delay = f"rejected: {err}", None
                if isinstance(err, BadLines) and err.sha256:
                    rejected.add(err.sha256)
                if kind == "local":  # the same bytes would fail the same way
                    raise FetchError(f"{url}: {reason}") from None
            except _Retryable as err:
                reason, delay = str(err), err.retry_after
                if delay is not None and delay > policy.retry_after_max_s:
                    raise FetchError(
                        f"{url}: {reason} with Retry-After {delay:.0f} s, more than "
                        f"retry_after_max_s={policy.retry_after_max_s:g}; giving up"
                    ) from None
            except httpx.TransportError as err:
                reason, delay = _describe(err), None
            _check_cancel(cancel)
            if attempt == policy.retries:
                raise FetchError(f"{url}: gave up after {attempt + 1} attempt(s); last error: {reason}")
            delay = policy.backoff(attempt) if delay is None else delay
            log.warning("%s: %s; retry %d/%d in %.1f s", url, reason, attempt + 1, policy.retries, delay)
            wait(delay)
        raise AssertionError("unreachable")
    finally:
        if own_client:
            client.close()


def fetch_bytes(
    url_or_path: str | Path,
    *,
    policy: RetryPolicy | None = None,
    client: httpx.Client | None = None,
    cancel: threading.Event | None = None,
) -> bytes:
    """A small file (e.g. a listing) in memory, with the same retries as :func:`fetch_file`."""
    with tempfile.TemporaryDirectory(prefix="elmo-fetch-") as tmp:
        dest = Path(tmp) / "body"
        fetch_file(url_or_path, dest, policy=policy, client=client, cancel=cancel)
        return dest.read_bytes()


def make_client(policy: RetryPolicy, max_connections: int = 8) -> httpx.Client:
    """An httpx client with the policy's timeouts, redirects followed and a project User-Agent."""
    return httpx.Client(
        timeout=httpx.Timeout(policy.timeout_s),
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )
