"""clean: every bad row is quarantined with its reason, counts add up, splits never move."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pytest

from elmo.clean import OUTPUT_COLUMNS, split_of
from elmo.errors import StageError
from elmo.io import atomic_write_json
from elmo.params import ParamsError, parse_params
from elmo.stages import clean
from elmo.text.normalize import Normalizer
from elmo.text.pipeline import TextPipeline

NOTICE = "[본 게시물의 일부 내용이 국민 청원 요건에 위배되어 관리자에 의해 수정되었습니다]"


def rec(idx, **over) -> dict:
    base = {
        "category": "기타",
        "begin": "2019-04-01",
        "end": "2019-05-01",
        "content": f"청원 {idx}의 내용입니다.",
        "num_agree": 5,
        "petition_idx": str(idx),
        "status": "청원종료",
        "title": f"제목 {idx}",
    }
    base.update(over)
    return base


def line(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def write_raw(raw: Path, months: dict[str, list[bytes]]) -> Path:
    """Month files plus the manifest crawl would have written."""
    raw.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, lines in months.items():
        data = b"".join(x + b"\n" for x in lines)
        (raw / name).write_bytes(data)
        files[name] = {"url": f"test://{name}", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                       "lines": len(lines), "fetched_at": "2024-01-01T00:00:00Z"}
    atomic_write_json(raw / "manifest.json", {"source": "test", "files": files, "missing": []})
    return raw


def params(**over):
    return parse_params({"clean": {"in_dir": "raw", "out_parquet": "out/p.parquet", "quarantine": "out/q.jsonl",
                                   "metrics": "out/clean.json", **over}})


# (raw line, reason, field) for every kind of bad row
BAD_ROWS = [
    (b"{not json", "bad_json", None),
    (b'{"title": "\xff\xfe"}', "bad_utf8", None),
    (b"", "blank_line", None),
    (b"[1, 2]", "not_an_object", None),
    (line({k: v for k, v in rec(10).items() if k != "title"}), "missing_field", "title"),
    (line({k: v for k, v in rec(11).items() if k != "petition_idx"}), "missing_field", "petition_idx"),
    (line(rec(12, title=123)), "wrong_type", "title"),
    (line(rec(13, content=None)), "wrong_type", "content"),
    (line(rec(14, petition_idx=True)), "wrong_type", "petition_idx"),
    (line(rec(15, begin=20190401)), "wrong_type", "begin"),
    (line(rec(16, num_agree="many")), "bad_value", "num_agree"),
    (line(rec(17, num_agree=-3)), "bad_value", "num_agree"),
    (line(rec("abc")), "bad_value", "petition_idx"),
    (line(rec(0)), "bad_value", "petition_idx"),
    (line(rec(18, begin="2019-02-30")), "bad_value", "begin"),
    (line(rec(19, end="2019/05/01")), "bad_value", "end"),
    (line(rec(20, begin="2019-05-02", end="2019-05-01")), "bad_value", "end"),
    (line(rec(21, title="", content="")), "empty_text", "title"),
    (line(rec(22, title=" \u200b ", content=f"  {NOTICE} ")), "empty_text", "title"),
]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    month_a = [line(rec(1, num_agree=1))] + [raw for raw, _, _ in BAD_ROWS] + [
        line(rec(1, num_agree=2)),  # duplicate of 1, later line
        line(rec(2, title="제목만", content="")),  # empty content alone is kept
    ]
    month_b = [line(rec(1, num_agree=3, begin="2019-05-01", end="2019-06-01")), line(rec(3, num_agree=7))]
    write_raw(tmp_path / "raw", {"petitions_2019-04": month_a, "petitions_2019-05": month_b})
    return tmp_path


def test_counts_add_up_and_every_bad_row_is_quarantined(workspace):
    report = clean.run(params(), workspace)
    n_a = 1 + len(BAD_ROWS) + 2
    assert report["read"] == n_a + 2
    assert report["quarantined"] == len(BAD_ROWS)
    assert report["duplicates"] == 2 and report["duplicate_ids"] == [1]
    assert report["kept"] == 3
    assert report["read"] == report["kept"] + report["duplicates"] + report["quarantined"]

    q = [json.loads(x) for x in (workspace / "out/q.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(q) == len(BAD_ROWS)
    for got, (raw, reason, field), lineno in zip(q, BAD_ROWS, range(2, 2 + len(BAD_ROWS))):
        assert got["source_file"] == "petitions_2019-04" and got["line"] == lineno
        assert (got["reason"], got["field"]) == (reason, field), got
        assert got["raw"] == raw.decode("utf-8", errors="backslashreplace")
        assert set(got) == {"source_file", "line", "reason", "field", "detail", "raw"}

    metrics = json.loads((workspace / "out/clean.json").read_text())
    expected = {}
    for _, reason, _ in BAD_ROWS:
        expected[reason] = expected.get(reason, 0) + 1
    assert {k: v for k, v in metrics["quarantine_reasons"].items() if v} == expected
    assert metrics["quarantine_fields"]["bad_value.num_agree"] == 2
    assert report["files"]["petitions_2019-04"] == {"read": n_a, "kept": 1, "duplicates": 2,
                                                     "quarantined": len(BAD_ROWS)}
    assert report["files"]["petitions_2019-05"] == {"read": 2, "kept": 2, "duplicates": 0, "quarantined": 0}
    assert sum(metrics["splits"].values()) == 3
    assert metrics["empty_content"] == 1 and metrics["normalisation"]["moderator_notices_removed"] == 1


def test_duplicate_rule_keeps_the_latest_month_then_latest_line(workspace):
    clean.run(params(), workspace)
    df = pl.read_parquet(workspace / "out/p.parquet")
    one = df.filter(pl.col("petition_idx") == 1).to_dicts()
    assert len(one) == 1
    assert (one[0]["source_file"], one[0]["source_line"], one[0]["num_agree"]) == ("petitions_2019-05", 1, 3)
    # within one month, the later line wins
    raw = workspace / "raw2"
    write_raw(raw, {"petitions_2019-04": [line(rec(5, num_agree=1)), line(rec(5, num_agree=9))]})
    clean.run(params(in_dir="raw2"), workspace)
    df = pl.read_parquet(workspace / "out/p.parquet")
    assert df.height == 1 and df["num_agree"][0] == 9 and df["source_line"][0] == 2


def test_output_schema_order_and_types(workspace):
    clean.run(params(), workspace)
    df = pl.read_parquet(workspace / "out/p.parquet")
    assert [(n, str(t)) for n, t in df.schema.items()] == [(n, t) for n, t in OUTPUT_COLUMNS]
    assert df["petition_idx"].to_list() == [1, 2, 3]  # sorted by id
    row = df.row(2, named=True)
    import datetime as dt

    assert row["begin"] == dt.date(2019, 4, 1) and row["end"] == dt.date(2019, 5, 1) and row["num_agree"] == 7
    assert set(df["split"]) <= {"train", "valid", "test"}
    assert not list((workspace / "out").glob(".*"))  # no temporaries left


def test_normalisation_steps():
    text = (
        "\ufeff제목&amp;내용 \u1112\u1161\u11ab국\u200b어\u00a0\u00a0입니다\t\t끝\x07."
        f" {NOTICE} 담당자 *****씨와 ○○○시 XXX 아파트   "
        "(본문의 내용중 타인의 명의 등 개인정보가 무분별하게 노출되어 "
        "해당 내용은 홈페이지 관리자에 의해 '숨김' 처리 되었습니다.)"
    )
    assert TextPipeline().normalize([text]) == ["제목&내용 한국어 입니다 끝 . 담당자 ***씨와 ***시 *** 아파트"]


def test_normaliser_counts_and_other_placeholder():
    p = parse_params({"clean": {"mask_placeholder": "<mask>"}}).clean
    norm = Normalizer.from_params(p)
    assert norm.texts(["a ** b ○○ c **○○XXX", "&lt;x&gt;", ""]) == ["a <mask> b <mask> c <mask>", "<x>", ""]
    assert norm.counts["masked_spans"] == 3 and norm.counts["html_entities"] == 1
    given = pl.Series(["a\u200b  **b", "&amp;", None])
    assert norm.series(given).to_list() == ["a <mask>b", "&", None]
    assert given.to_list() == ["a\u200b  **b", "&amp;", None]  # the input is not modified


@pytest.mark.parametrize(
    "section, key",
    [
        ({"mask_pattern": "(unclosed"}, "clean.mask_pattern"),
        ({"mask_pattern": "(?<!a)b"}, "clean.mask_pattern"),  # look-around: not Rust regex
        ({"mask_pattern": "x*"}, "clean.mask_pattern"),  # matches ''
        ({"moderator_notices": ["[bad"]}, "clean.moderator_notices"),
        ({"mask_placeholder": "$1"}, "clean.mask_placeholder"),
        ({"valid_fraction": 0.5, "test_fraction": 0.5}, "clean"),
    ],
)
def test_clean_params_are_checked(section, key):
    with pytest.raises(ParamsError, match=key):
        parse_params({"clean": section})


def test_split_is_a_stable_hash_with_the_right_fractions():
    ids = range(1, 40001)
    splits = [split_of(i, 0.1, 0.05, "salt") for i in ids]
    assert abs(splits.count("valid") / len(ids) - 0.1) < 0.01
    assert abs(splits.count("test") / len(ids) - 0.05) < 0.01
    assert splits == [split_of(i, 0.1, 0.05, "salt") for i in ids]  # deterministic
    assert splits != [split_of(i, 0.1, 0.05, "other salt") for i in ids]
    # a known value, so that a change of the hash (which would reshuffle every split) fails here
    known = {1: "train", 7: "test", 17: "valid", 34: "valid", 40: "train"}
    assert {i: split_of(i, 0.05, 0.05, "elmo-ko-split-v1") for i in known} == known


def test_adding_a_month_never_moves_an_existing_petition(tmp_path):
    months = {
        f"petitions_2019-0{m}": [line(rec(m * 1000 + i)) for i in range(300)] for m in (4, 5)
    }
    write_raw(tmp_path / "raw", months)
    clean.run(params(valid_fraction=0.2, test_fraction=0.2), tmp_path)
    before = dict(pl.read_parquet(tmp_path / "out/p.parquet").select("petition_idx", "split").iter_rows())
    assert set(before.values()) == {"train", "valid", "test"}

    months["petitions_2019-06"] = [line(rec(6000 + i)) for i in range(300)]
    months["petitions_2019-03"] = [line(rec(3000 + i)) for i in range(300)]
    write_raw(tmp_path / "raw", months)
    report = clean.run(params(valid_fraction=0.2, test_fraction=0.2), tmp_path)
    assert report["kept"] == 1200
    after = dict(pl.read_parquet(tmp_path / "out/p.parquet").select("petition_idx", "split").iter_rows())
    assert {i: after[i] for i in before} == before


def test_raw_directory_must_match_its_manifest(workspace):
    raw = workspace / "raw"
    (raw / "petitions_2019-05").write_bytes((raw / "petitions_2019-05").read_bytes() + b"\n")
    with pytest.raises(StageError, match=r"petitions_2019-05: sha256 differs from manifest.json"):
        clean.run(params(), workspace)
    (raw / "petitions_2019-05").unlink()
    with pytest.raises(StageError, match=r"petitions_2019-05: listed in manifest.json but missing"):
        clean.run(params(), workspace)
    (raw / "petitions_2019-07").write_text("{}\n")
    with pytest.raises(StageError, match=r"petitions_2019-07 not in manifest.json"):
        clean.run(params(), workspace)
    (raw / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="run `elmo crawl` first"):
        clean.run(params(), workspace)


def test_nothing_kept_is_an_error_after_writing_the_quarantine(tmp_path):
    write_raw(tmp_path / "raw", {"petitions_2019-04": [b"{bad", line(rec(1, title="", content=""))]})
    with pytest.raises(StageError, match="no petition survived"):
        clean.run(params(), tmp_path)
    assert len((tmp_path / "out/q.jsonl").read_text().splitlines()) == 2
    assert json.loads((tmp_path / "out/clean.json").read_text())["quarantined"] == 2
