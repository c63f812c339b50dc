"""crawl: the downloader and the stage against a 127.0.0.1 server that injects faults.

Every test asserts that no partial or temporary file is left in the output directory.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from elmo.crawl import FetchError, NotFound, RetryPolicy, VerifyError, fetch_file
from elmo.crawl.retry import parse_retry_after
from elmo.crawl.source import Source, parse_listing, source_kind
from elmo.crawl.verify import verify_month_file
from elmo.errors import StageError
from elmo.params import ParamsError, parse_params
from elmo.stages import crawl

pytestmark = pytest.mark.network

MONTHS = ["petitions_2019-04", "petitions_2019-05", "petitions_2019-06"]
ARCHIVE_MTIME = datetime(2019, 7, 1, tzinfo=timezone.utc).timestamp()


def record(idx: int, month: str = "2019-04") -> dict:
    return {
        "category": "기타",
        "begin": f"{month}-01",
        "end": f"{month}-28",
        "content": f"청원 내용 {idx}입니다. " * 3,
        "num_agree": idx % 7,
        "petition_idx": str(idx),
        "status": "청원종료",
        "title": f"제목 {idx}",
    }


def write_archive(directory: Path, months=MONTHS, lines: int = 40, listing: list[str] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(months):
        month = name.removeprefix("petitions_")
        body = "".join(json.dumps(record(k * 1000 + i, month), ensure_ascii=False) + "\n" for i in range(lines))
        (directory / name).write_text(body, encoding="utf-8")
        os.utime(directory / name, (ARCHIVE_MTIME, ARCHIVE_MTIME))  # an archive's months are old files
    (directory / "files").write_text("\n".join(listing if listing is not None else months) + "\n")
    return directory


# --------------------------------------------------------------------------------------------
# A static server with ETag / Last-Modified / conditional GET, and a queue of faults per path.
# Faults: ("status", code, headers) | ("sleep", seconds) | ("drop", nbytes) | ("truncate", nbytes)
#         | ("stall", nbytes) | ("corrupt",) (one byte becomes 0xff, at another place each request)
#         — a fault in `sticky` applies to every request of that path.
# --------------------------------------------------------------------------------------------
class FaultServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, directory: Path) -> None:
        super().__init__(("127.0.0.1", 0), FaultHandler)
        self.directory = directory
        self.faults: dict[str, list[tuple]] = defaultdict(list)
        self.sticky: dict[str, tuple] = {}
        self.requests: list[dict] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.validators = True  # False: no ETag / Last-Modified, conditional requests ignored

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def next_fault(self, path: str) -> tuple | None:
        with self.lock:
            if self.faults[path]:
                return self.faults[path].pop(0)
            return self.sticky.get(path)

    def hits(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]


class FaultHandler(http.server.BaseHTTPRequestHandler):
    server: FaultServer

    def log_message(self, format, *args):
        pass

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.lstrip("/")
        fault = self.server.next_fault(path)
        entry = {"path": path, "t": time.monotonic(), "headers": dict(self.headers), "fault": fault}
        with self.server.lock:
            self.server.requests.append(entry)
        try:
            self._serve(path, fault, entry)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _serve(self, path: str, fault, entry) -> None:
        if fault and fault[0] == "status":
            self.send_response(fault[1])
            for k, v in (fault[2] if len(fault) > 2 else {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
            entry["status"] = fault[1]
            return
        if fault and fault[0] == "sleep":
            self.server.stop.wait(fault[1])
        file = self.server.directory / path
        if "/" in path or not file.is_file():
            self.send_error(404)
            entry["status"] = 404
            return
        body = file.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        mtime = datetime.fromtimestamp(int(file.stat().st_mtime), timezone.utc)
        if self.server.validators and self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            entry["status"] = 304
            return
        if fault and fault[0] == "truncate":
            body = body[: fault[1]]
        if fault and fault[0] == "corrupt":  # transport damage: different bytes every time
            at = (len(body) // 3 + 97 * len(self.server.hits(path))) % len(body)
            body = body[:at] + b"\xff" + body[at + 1:]
        self.send_response(200)
        if self.server.validators:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", format_datetime(mtime, usegmt=True))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        entry["status"] = 200
        if fault and fault[0] in ("drop", "stall"):
            self.wfile.write(body[: fault[1]])
            self.wfile.flush()
            if fault[0] == "stall":
                self.server.stop.wait(30)
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return write_archive(tmp_path / "archive")


@pytest.fixture
def server(archive: Path):
    srv = FaultServer(archive)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.stop.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def make_params(source: str, **crawl_over):
    section = {
        "source": source,
        "out_dir": "raw",
        "retries": 3,
        "timeout_s": 2.0,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "concurrency": 2,
        **crawl_over,
    }
    return parse_params({"crawl": section})


def assert_no_partials(out: Path) -> None:
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == [], leftovers


def assert_mirrors(out: Path, archive: Path, months=MONTHS) -> None:
    assert sorted(p.name for p in out.glob("petitions_*")) == sorted(months)
    for name in months:
        assert (out / name).read_bytes() == (archive / name).read_bytes(), name


# ------------------------------------------------------------------------------- happy paths
def test_http_crawl_mirrors_and_writes_manifest(server, archive, tmp_path):
    report = crawl.run(make_params(server.url), tmp_path)
    out = tmp_path / "raw"
    assert_mirrors(out, archive)
    assert_no_partials(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == server.url and manifest["missing"] == []
    for name in MONTHS:
        e = manifest["files"][name]
        data = (archive / name).read_bytes()
        assert e["url"] == server.url + name
        assert e["bytes"] == len(data) and e["sha256"] == hashlib.sha256(data).hexdigest()
        assert e["lines"] == 40 and e["etag"] and e["last_modified"]
        datetime.fromisoformat(e["fetched_at"].replace("Z", "+00:00"))
    assert report["months"] == 3 and report["fetched"] == MONTHS and report["lines"] == 120


def test_rerun_fetches_nothing_and_keeps_manifest_bytes(server, tmp_path):
    params = make_params(server.url)
    crawl.run(params, tmp_path)
    manifest_before = (tmp_path / "raw" / "manifest.json").read_bytes()
    server.requests.clear()
    report = crawl.run(params, tmp_path)
    assert report["fetched"] == [] and report["unchanged"] == 3 and report["transferred_bytes"] == 0
    month_hits = [r for r in server.requests if r["path"] != "files"]
    assert len(month_hits) == 3
    assert all(r["status"] == 304 and r["headers"].get("If-None-Match") for r in month_hits)
    assert (tmp_path / "raw" / "manifest.json").read_bytes() == manifest_before


def test_server_without_validators_same_bytes_count_as_unchanged(server, tmp_path):
    server.validators = False
    params = make_params(server.url)
    crawl.run(params, tmp_path)
    manifest_before = (tmp_path / "raw" / "manifest.json").read_bytes()
    report = crawl.run(params, tmp_path)
    assert report["fetched"] == [] and report["unchanged"] == 3 and report["transferred_bytes"] > 0
    assert (tmp_path / "raw" / "manifest.json").read_bytes() == manifest_before
    assert_no_partials(tmp_path / "raw")


def test_changed_month_is_the_only_one_refetched(server, archive, tmp_path):
    params = make_params(server.url)
    crawl.run(params, tmp_path)
    with open(archive / "petitions_2019-05", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record(99999, "2019-05"), ensure_ascii=False) + "\n")
    report = crawl.run(params, tmp_path)
    assert report["fetched"] == ["petitions_2019-05"] and report["unchanged"] == 2
    assert_mirrors(tmp_path / "raw", archive)
    manifest = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    assert manifest["files"]["petitions_2019-05"]["lines"] == 41


def test_file_rewritten_within_the_second_of_its_fetch_is_fetched_again(tmp_path):
    # The stdlib server answers If-Modified-Since by whole seconds: a Last-Modified as new as the
    # response's Date is weak and must not make the next request conditional (RFC 9110 8.8.2.2).
    from elmo.httpserve import serve_directory

    (tmp_path / "srv").mkdir()
    src, dest = tmp_path / "srv" / "a.txt", tmp_path / "a.txt"
    src.write_bytes(b"first\n")
    with serve_directory(tmp_path / "srv") as url:
        first = fetch_file(url + "a.txt", dest)
        src.write_bytes(b"other\n")  # same size, most likely the same second
        second = fetch_file(url + "a.txt", dest, previous=first.entry())
        assert second.status == "fetched" and dest.read_bytes() == b"other\n"
        os.utime(src, (ARCHIVE_MTIME, ARCHIVE_MTIME))
        third = fetch_file(url + "a.txt", dest, previous=second.entry())
        assert third.status == "unchanged" and third.last_modified  # same bytes; an old Last-Modified is kept
        fourth = fetch_file(url + "a.txt", dest, previous=third.entry())
        assert fourth.status == "unchanged" and fourth.transferred == 0  # 304


def test_last_modified_is_a_validator_only_when_a_second_older_than_date():
    from elmo.crawl.fetch import _strong_last_modified

    lm = "Tue, 01 Dec 2026 18:49:11 GMT"
    assert _strong_last_modified(lm, "Tue, 01 Dec 2026 18:49:11 GMT") is None
    assert _strong_last_modified(lm, "Tue, 01 Dec 2026 18:49:12 GMT") == lm
    assert _strong_last_modified(lm, None) == lm  # no Date: compared with now
    assert _strong_last_modified("not a date", "Tue, 01 Dec 2026 18:49:12 GMT") is None
    assert _strong_last_modified(None, None) is None


def test_local_directory_source_is_incremental_by_sha256(archive, tmp_path):
    params = make_params(str(archive))
    report = crawl.run(params, tmp_path)
    assert report["fetched"] == MONTHS
    assert_mirrors(tmp_path / "raw", archive)
    assert crawl.run(params, tmp_path)["fetched"] == []
    data = (archive / "petitions_2019-06").read_text(encoding="utf-8").replace("제목 2001", "제목 2001!")
    (archive / "petitions_2019-06").write_text(data, encoding="utf-8")
    assert crawl.run(params, tmp_path)["fetched"] == ["petitions_2019-06"]
    assert_mirrors(tmp_path / "raw", archive)
    assert_no_partials(tmp_path / "raw")


def test_a_damaged_local_copy_is_fetched_again(server, archive, tmp_path):
    params = make_params(server.url)
    crawl.run(params, tmp_path)
    (tmp_path / "raw" / "petitions_2019-04").write_text("tampered\n")
    report = crawl.run(params, tmp_path)
    assert report["fetched"] == ["petitions_2019-04"]
    assert_mirrors(tmp_path / "raw", archive)


def test_month_selection_and_stale_months_removed(server, archive, tmp_path):
    crawl.run(make_params(server.url), tmp_path)
    report = crawl.run(make_params(server.url, month_from="2019-05"), tmp_path)
    assert report["removed"] == ["petitions_2019-04"] and report["months"] == 2
    assert_mirrors(tmp_path / "raw", archive, MONTHS[1:])
    manifest = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    assert sorted(manifest["files"]) == MONTHS[1:]
    report = crawl.run(make_params(server.url, months=["2019-06"]), tmp_path)
    assert report["months"] == 1 and report["removed"] == ["petitions_2019-05"]
    with pytest.raises(StageError, match="2019-12 not in the listing"):
        crawl.run(make_params(server.url, months=["2019-12"]), tmp_path)
    with pytest.raises(StageError, match="no months selected"):
        crawl.run(make_params(server.url, month_from="2020-01"), tmp_path)


# ------------------------------------------------------------------------------- faults
def test_500_then_success(server, archive, tmp_path):
    server.faults["petitions_2019-05"] = [("status", 500), ("status", 503)]
    report = crawl.run(make_params(server.url), tmp_path)
    assert [r["status"] for r in server.hits("petitions_2019-05")] == [500, 503, 200]
    assert report["retries"] == 2
    assert_mirrors(tmp_path / "raw", archive)
    assert_no_partials(tmp_path / "raw")


def test_429_honours_retry_after(server, archive, tmp_path):
    server.faults["petitions_2019-04"] = [("status", 429, {"Retry-After": "1"})]
    crawl.run(make_params(server.url), tmp_path)
    hits = server.hits("petitions_2019-04")
    assert [h["status"] for h in hits] == [429, 200]
    assert hits[1]["t"] - hits[0]["t"] >= 0.95  # backoff alone would be <= 0.05 s
    assert_mirrors(tmp_path / "raw", archive)


def test_retry_after_longer_than_allowed_gives_up_at_once(server, tmp_path):
    server.faults["petitions_2019-04"] = [("status", 503, {"Retry-After": "3600"})]
    t0 = time.monotonic()
    with pytest.raises(StageError, match=r"petitions_2019-04: .*Retry-After 3600 s"):
        crawl.run(make_params(server.url, retry_after_max_s=5), tmp_path)
    assert time.monotonic() - t0 < 5
    assert not (tmp_path / "raw" / "petitions_2019-04").exists()
    assert_mirrors(tmp_path / "raw", tmp_path / "archive", MONTHS[1:])  # the others are kept


def test_timeout_is_retried(server, archive, tmp_path):
    server.faults["petitions_2019-06"] = [("sleep", 2.0)]
    report = crawl.run(make_params(server.url, timeout_s=0.3), tmp_path)
    assert len(server.hits("petitions_2019-06")) == 2 and report["retries"] == 1
    assert_mirrors(tmp_path / "raw", archive)
    assert_no_partials(tmp_path / "raw")


def test_connection_dropped_mid_body_is_retried(server, archive, tmp_path):
    server.faults["petitions_2019-05"] = [("drop", 300), ("drop", 1000)]
    report = crawl.run(make_params(server.url), tmp_path)
    assert len(server.hits("petitions_2019-05")) == 3 and report["retries"] == 2
    assert_mirrors(tmp_path / "raw", archive)
    assert_no_partials(tmp_path / "raw")


def test_truncated_last_line_once_is_retried(server, archive, tmp_path):
    size = (archive / "petitions_2019-04").stat().st_size
    server.faults["petitions_2019-04"] = [("truncate", size - 20)]
    crawl.run(make_params(server.url), tmp_path)
    assert len(server.hits("petitions_2019-04")) == 2
    assert_mirrors(tmp_path / "raw", archive)


def test_always_truncated_month_is_kept_as_the_sources_content(server, archive, tmp_path):
    """The same truncated bytes twice are what the source serves: kept, the bad line counted."""
    size = (archive / "petitions_2019-04").stat().st_size
    server.sticky["petitions_2019-04"] = ("truncate", size - 20)
    report = crawl.run(make_params(server.url, retries=2), tmp_path)
    assert len(server.hits("petitions_2019-04")) == 2  # refetched once, then accepted
    out = tmp_path / "raw"
    assert (out / "petitions_2019-04").read_bytes() == (archive / "petitions_2019-04").read_bytes()[: size - 20]
    entry = json.loads((out / "manifest.json").read_text())["files"]["petitions_2019-04"]
    assert entry["lines"] == 40 and entry["bad_lines"] == 1
    assert entry["first_bad_line"].startswith("line 40: not JSON") and "truncated" in entry["first_bad_line"]
    assert " at at " not in entry["first_bad_line"]
    assert report["months"] == 3
    assert_no_partials(out)


def test_corrupt_bytes_every_time_are_rejected_with_line_and_reason(server, archive, tmp_path):
    server.sticky["petitions_2019-04"] = ("corrupt",)  # never the same bytes twice: transport damage
    with pytest.raises(StageError) as e:
        crawl.run(make_params(server.url, retries=2), tmp_path)
    msg = str(e.value)
    assert "petitions_2019-04" in msg and "gave up after 3 attempt(s)" in msg and "not UTF-8" in msg
    out = tmp_path / "raw"
    assert not (out / "petitions_2019-04").exists()
    assert_mirrors(out, archive, MONTHS[1:])  # the good months are saved, a rerun resumes
    assert_no_partials(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["files"]) == MONTHS[1:]
    assert manifest["incomplete"]["reason"] == "failed" and list(manifest["incomplete"]["months"]) == MONTHS[:1]


def test_corrupt_bytes_once_are_refetched(server, archive, tmp_path):
    server.faults["petitions_2019-05"] = [("corrupt",)]
    crawl.run(make_params(server.url), tmp_path)
    assert len(server.hits("petitions_2019-05")) == 2
    assert_mirrors(tmp_path / "raw", archive)
    assert "bad_lines" not in json.loads((tmp_path / "raw/manifest.json").read_text())["files"]["petitions_2019-05"]


def test_listed_month_that_404s_fails_unless_allowed(server, archive, tmp_path):
    (archive / "files").write_text("\n".join([*MONTHS, "petitions_2019-07"]) + "\n")
    with pytest.raises(StageError, match=r"petitions_2019-07: .*404.*allow_missing_months"):
        crawl.run(make_params(server.url), tmp_path)
    assert len(server.hits("petitions_2019-07")) == 1  # a 404 is not retried
    assert_mirrors(tmp_path / "raw", archive)
    report = crawl.run(make_params(server.url, allow_missing_months=True), tmp_path)
    assert report["missing"] == ["petitions_2019-07"] and report["months"] == 3
    manifest = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    assert manifest["missing"] == ["petitions_2019-07"] and "petitions_2019-07" not in manifest["files"]
    assert_no_partials(tmp_path / "raw")


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "petitions_2019-04/../../x", "petitions_2019-13", "README"])
def test_listing_with_a_bad_name_is_refused(server, archive, tmp_path, bad):
    (archive / "files").write_text(f"petitions_2019-04\n{bad}\npetitions_2019-05\n")
    with pytest.raises(StageError, match=rf"files: line 2: '{bad}' is not a month file name"):
        crawl.run(make_params(server.url), tmp_path)
    assert [p.name for p in (tmp_path / "raw").iterdir()] == []
    assert not (tmp_path / "x").exists()


def test_unreachable_source_fails_clearly(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    with pytest.raises(StageError, match=r"the listing: http://127.0.0.1:\d+/files: gave up after 2 attempt"):
        crawl.run(make_params(f"http://127.0.0.1:{port}/", retries=1), tmp_path)


def test_leftover_temporaries_of_a_killed_run_are_removed(server, archive, tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    (out / ".petitions_2019-04.k2j3.tmp").write_bytes(b"partial")
    (out / ".manifest.json.abcd.tmp").write_bytes(b"{")
    report = crawl.run(make_params(server.url), tmp_path)
    assert report["leftovers_removed"] == 2
    assert_no_partials(out)
    assert_mirrors(out, archive)


def _cli(root: Path, params: dict) -> subprocess.Popen:
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    # SIGINT may be ignored when the tests run as a background job; a user's terminal delivers it.
    code = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from elmo.cli import app; sys.argv[0] = 'elmo'; app()"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, "crawl"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _wait_for_partial(out: Path, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if out.is_dir() and list(out.glob(".petitions_2019-05.*.tmp")):
            return
        if proc.poll() is not None:
            raise AssertionError(f"crawl ended early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no partial download appeared")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_crawl_leaves_no_partial_file(server, archive, tmp_path, sig):
    server.sticky["petitions_2019-05"] = ("stall", 500)
    section = {"source": server.url, "out_dir": "raw", "timeout_s": 2.0, "concurrency": 1, "months": ["2019-05"]}
    proc = _cli(tmp_path, {"crawl": section})
    try:
        _wait_for_partial(tmp_path / "raw", proc)
        proc.send_signal(sig)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    err = proc.stderr.read().decode()
    assert "crawl: interrupted" in err and "kept 0 complete month(s)" in err and "Traceback" not in err
    assert not (tmp_path / "raw" / "petitions_2019-05").exists()
    assert_no_partials(tmp_path / "raw")
    manifest = json.loads((tmp_path / "raw/manifest.json").read_text())
    assert manifest["incomplete"] == {"reason": "interrupted",
                                      "months": {"petitions_2019-05": "not fetched (interrupted)"}}


def test_killed_crawl_resumes_cleanly(server, archive, tmp_path):
    server.faults["petitions_2019-05"] = [("stall", 500)]
    section = {"source": server.url, "out_dir": "raw", "timeout_s": 2.0, "concurrency": 1}
    proc = _cli(tmp_path, {"crawl": section})
    try:
        _wait_for_partial(tmp_path / "raw", proc)
        proc.kill()  # SIGKILL: no cleanup possible, the temporary stays behind ...
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / "raw" / "petitions_2019-05").exists()
    report = crawl.run(make_params(server.url), tmp_path)  # ... and the next run removes it
    assert report["leftovers_removed"] >= 1
    assert_mirrors(tmp_path / "raw", archive)
    assert_no_partials(tmp_path / "raw")


def test_signal_kill9_mid_crawl_leaves_incomplete_and_clean_refuses(server, archive, tmp_path):
    # 2019-04 is fetched, 2019-05 stalls mid-body: kill -9 then, with one month of two on disk.
    server.sticky["petitions_2019-05"] = ("stall", 500)
    section = {"source": server.url, "out_dir": "raw", "timeout_s": 5.0, "concurrency": 1,
               "months": ["2019-04", "2019-05"]}
    clean = {"in_dir": "raw", "out_parquet": "clean.parquet", "quarantine": "q.jsonl", "metrics": "m.json"}
    proc = _cli(tmp_path, {"crawl": section, "clean": clean})
    try:
        _wait_for_partial(tmp_path / "raw", proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (tmp_path / "raw" / "petitions_2019-04").is_file()
    manifest = json.loads((tmp_path / "raw/manifest.json").read_text())
    assert list(manifest["files"]) == ["petitions_2019-04"]
    assert manifest["incomplete"]["reason"] == "running"
    assert list(manifest["incomplete"]["months"]) == ["petitions_2019-05"]  # what is left to do
    res = subprocess.run([sys.executable, "-c", "from elmo.cli import app; app()", "clean"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "manifest.json: the last crawl did not finish" in errors[0] and "petitions_2019-05" in errors[0]
    assert not (tmp_path / "clean.parquet").exists()
    server.sticky.clear()
    crawl.run(make_params(server.url, months=["2019-04", "2019-05"]), tmp_path)  # a finished crawl clears it
    assert "incomplete" not in json.loads((tmp_path / "raw/manifest.json").read_text())


# ------------------------------------------------------------------------------- sources & params
@pytest.mark.parametrize("bad", ["ftp://example.org/x/", "file:///etc/", "s3://bucket/x", "http:///nohost"])
def test_only_http_https_and_local_paths_are_accepted(bad):
    with pytest.raises(ValueError):
        source_kind(bad)
    with pytest.raises(ParamsError, match="crawl.source"):
        parse_params({"crawl": {"source": bad}})


def test_source_kinds_and_locations(tmp_path):
    assert source_kind("https://raw.githubusercontent.com/a/b/master/") == "http"
    assert source_kind("../shared/data/petitions_archive") == "local"
    src = Source.parse("http://127.0.0.1:1/archive", tmp_path)
    assert src.locate("petitions_2019-04") == "http://127.0.0.1:1/archive/petitions_2019-04"
    with pytest.raises(ValueError):
        src.locate("../secrets")
    with pytest.raises(FileNotFoundError, match="no such directory"):
        Source.parse("does/not/exist", tmp_path)


def test_parse_listing_skips_blanks_and_repeats():
    text = "petitions_2019-04\n\n  petitions_2019-05 \npetitions_2019-04\n"
    assert parse_listing(text, "files") == ["petitions_2019-04", "petitions_2019-05"]


@pytest.mark.parametrize(
    "section, key",
    [
        ({"months": ["2019-4"]}, "crawl.months"),
        ({"months": []}, "crawl.months"),
        ({"month_from": "2019-13"}, "crawl.month_from"),
        ({"month_from": "2020-01", "month_to": "2019-01"}, "crawl"),
        ({"concurrency": 0}, "crawl.concurrency"),
    ],
)
def test_crawl_params_are_checked(section, key):
    with pytest.raises(ParamsError, match=key):
        parse_params({"crawl": section})


# ------------------------------------------------------------------------------- fetch_file API
def test_fetch_file_verify_info_and_progress(server, archive, tmp_path):
    seen = []
    res = fetch_file(server.url + "petitions_2019-04", tmp_path / "m", verify=verify_month_file,
                     policy=RetryPolicy(retries=0), progress=seen.append)
    assert res.status == "fetched" and res.info == {"lines": 40} and res.entry()["lines"] == 40
    assert sum(seen) == res.bytes == (archive / "petitions_2019-04").stat().st_size
    again = fetch_file(server.url + "petitions_2019-04", tmp_path / "m", verify=verify_month_file,
                       previous=res.entry())
    assert again.status == "unchanged" and again.entry() == res.entry()


def test_fetch_file_keeps_bad_lines_of_a_local_file_and_rejects_a_file_without_good_lines(tmp_path):
    src = tmp_path / "src.json"
    src.write_text(json.dumps(record(1)) + "\n[1, 2]\n")
    res = fetch_file(src, tmp_path / "dest", verify=verify_month_file)  # no transport: its content
    assert res.info == {"lines": 2, "bad_lines": 1, "first_bad_line": "line 2: a JSON list, not an object"}
    assert (tmp_path / "dest").read_bytes() == src.read_bytes()
    src.write_text("[1, 2]\n")
    with pytest.raises(FetchError, match=r"no good line in 1 \(line 1: a JSON list, not an object\)"):
        fetch_file(src, tmp_path / "dest2", verify=verify_month_file)
    assert not (tmp_path / "dest2").exists()
    with pytest.raises(NotFound):
        fetch_file(tmp_path / "missing", tmp_path / "dest")


def test_fetch_file_custom_verify_is_retried_then_rejected(server, tmp_path):
    calls = []

    def never(path: Path):
        calls.append(path.name)
        raise VerifyError("not what I wanted")

    with pytest.raises(FetchError, match="gave up after 3 attempt.*not what I wanted"):
        fetch_file(server.url + "petitions_2019-04", tmp_path / "dl" / "d", verify=never,
                   policy=RetryPolicy(retries=2, backoff_base_s=0.0))
    assert len(calls) == 3 and all(c.endswith(".tmp") for c in calls)  # verified before the rename
    assert list((tmp_path / "dl").iterdir()) == []


def test_fetch_file_does_not_retry_other_client_errors(server, tmp_path):
    server.faults["petitions_2019-04"] = [("status", 403)]
    with pytest.raises(FetchError, match="HTTP 403"):
        fetch_file(server.url + "petitions_2019-04", tmp_path / "d", policy=RetryPolicy(retries=3))
    assert len(server.hits("petitions_2019-04")) == 1


def test_backoff_grows_exponentially_with_jitter_and_cap():
    import random

    p = RetryPolicy(backoff_base_s=0.5, backoff_max_s=4.0)
    rng = random.Random(0)
    for attempt, cap in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        waits = [p.backoff(attempt, rng) for _ in range(200)]
        assert all(cap / 2 <= w <= cap for w in waits)
        assert max(waits) - min(waits) > cap / 4  # jittered


def test_parse_retry_after():
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None) is None
