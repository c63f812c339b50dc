"""crawl never harms its source, removes only what it wrote, keeps a source's stable bad lines for
clean to quarantine, and clean refuses the data of a crawl that did not finish (issue 12)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from elmo.cli import app
from elmo.errors import StageError
from elmo.params import parse_params
from elmo.stages import clean, crawl
from test_crawl import MONTHS, assert_mirrors, make_params, record, write_archive


def tree_digest(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(directory.rglob("*"))}


@pytest.mark.parametrize("out_dir, how", [("archive", "is the same directory as"),
                                          ("archive/raw", "lies inside"), (".", "contains")])
def test_out_dir_that_is_inside_or_contains_a_local_source_is_refused(tmp_path, monkeypatch, out_dir, how):
    archive = write_archive(tmp_path / "archive")
    before = tree_digest(archive)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"crawl": {"source": "archive", "out_dir": out_dir, "months": ["2019-04"]}}))
    monkeypatch.chdir(tmp_path)  # the CLI's workspace is the current directory
    res = CliRunner().invoke(app, ["crawl"])
    assert res.exit_code == 2, res.output
    assert "crawl.out_dir" in res.output and "crawl.source" in res.output and how in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert tree_digest(archive) == before  # byte-identical, nothing added or removed


def test_unselected_months_are_removed_only_if_crawl_wrote_them(tmp_path):
    archive = write_archive(tmp_path / "archive")
    out = tmp_path / "raw"
    crawl.run(make_params("archive", months=["2019-04", "2019-05"]), tmp_path)
    foreign = out / "petitions_2019-06"
    foreign.write_bytes(b"a file the user put here\n")
    report = crawl.run(make_params("archive", months=["2019-04"]), tmp_path)
    assert report["removed"] == ["petitions_2019-05"]  # crawl wrote it (it is in the manifest)
    assert report["not_ours"] == ["petitions_2019-06"] and foreign.read_bytes() == b"a file the user put here\n"
    assert_mirrors(tmp_path / "archive", archive)  # the source is untouched


def _archive_with_bad_lines(directory: Path) -> Path:
    write_archive(directory)
    good = [json.dumps(record(5000 + i, "2019-05"), ensure_ascii=False) for i in range(3)]
    body = good[0] + "\n" + "{not json\n" + "\n" + good[1] + "\n" + '["a list"]\n' + good[2] + "\n"
    (directory / "petitions_2019-05").write_bytes(body.encode() + b"\xff\xfe bad bytes\n")
    return directory


def test_a_stable_bad_line_reaches_the_quarantine_with_its_reason(tmp_path):
    """A month whose bad lines are the source's content (same bytes twice) is kept and cleaned."""
    from elmo.httpserve import serve_directory

    archive = _archive_with_bad_lines(tmp_path / "archive")
    with serve_directory(archive) as url:
        report = crawl.run(make_params(url, retries=2), tmp_path)
    assert report["months"] == 3
    entry = json.loads((tmp_path / "raw/manifest.json").read_text())["files"]["petitions_2019-05"]
    assert entry["lines"] == 7 and entry["bad_lines"] == 4 and entry["first_bad_line"].startswith("line 2: not JSON")
    assert (tmp_path / "raw/petitions_2019-05").read_bytes() == (archive / "petitions_2019-05").read_bytes()
    params = parse_params({"clean": {"in_dir": "raw"}})
    rep = clean.run(params, tmp_path)
    q = [json.loads(line) for line in (tmp_path / "data/interim/quarantine.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"], r["raw"]) for r in q if r["source_file"] == "petitions_2019-05"] == [
        (2, "bad_json", "{not json"), (3, "blank_line", ""), (5, "not_an_object", '["a list"]'),
        (7, "bad_utf8", "\\xff\\xfe bad bytes")]
    assert rep["files"]["petitions_2019-05"] == {"read": 7, "kept": 3, "duplicates": 0, "quarantined": 4}


def test_clean_refuses_a_failed_crawl_and_names_the_months(tmp_path):
    from elmo.httpserve import serve_directory

    archive = write_archive(tmp_path / "archive")
    (archive / "files").write_text("\n".join([*MONTHS, "petitions_2019-07"]) + "\n")  # listed, 404
    with serve_directory(archive) as url, pytest.raises(StageError, match="1 of 4 months failed"):
        crawl.run(make_params(url), tmp_path)
    with pytest.raises(StageError, match=r"the last crawl failed \(months not fetched: petitions_2019-07\)"):
        clean.run(parse_params({"clean": {"in_dir": "raw"}}), tmp_path)
    with serve_directory(archive) as url:  # allowed to be missing: clean runs and names it
        crawl.run(make_params(url, allow_missing_months=True), tmp_path)
    rep = clean.run(parse_params({"clean": {"in_dir": "raw"}}), tmp_path)
    assert rep["missing_months"] == ["petitions_2019-07"] and rep["read"] == 120


def test_listing_errors_name_the_listing_once(tmp_path):
    archive = write_archive(tmp_path / "archive", listing=["petitions_2019-04", "../etc/passwd"])
    with pytest.raises(StageError) as e:
        crawl.run(make_params("archive"), tmp_path)
    msg = str(e.value)
    assert msg.count(str(archive / "files")) == 1 and "line 2" in msg
