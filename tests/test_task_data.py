"""Labeled dataset reading: JSON arrays, JSON lines, CSV; clear errors or counted skips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from elmo.errors import StageError
from elmo.task.data import Record, check_labels, read_records

KW = dict(text_field="title", label_field="label", id_field="guid")


def write_json(path: Path, records) -> Path:
    path.write_text(json.dumps(records, ensure_ascii=False, indent=4), encoding="utf-8")
    return path


def test_json_array_in_klue_layout(tmp_path: Path) -> None:
    f = write_json(tmp_path / "t.json", [
        {"guid": "a", "title": " 국회  예산안\u3000통과 ", "label": "정치", "url": "u"},
        {"guid": "b", "title": "손흥민 골", "label": "스포츠"},
    ])
    recs, rep = read_records(f, **KW)
    assert [r.text for r in recs] == ["국회 예산안 통과", "손흥민 골"]
    assert [r.line for r in recs] == [2, 8] and recs[0].id == "a"
    assert rep.records == 2 and not rep.skipped


def test_malformed_record_names_file_line_and_field(tmp_path: Path) -> None:
    f = write_json(tmp_path / "t.json", [{"title": "a", "label": "x"}, {"title": 5, "label": "y"}])
    with pytest.raises(StageError, match=r"t.json: line 6: field 'title' must be a string, got int"):
        read_records(f, **KW)
    recs, rep = read_records(f, **KW, invalid_records="skip")
    assert len(recs) == 1 and rep.skipped == {"malformed": 1} and "line 6" in rep.examples[0]
    g = write_json(tmp_path / "g.json", [{"title": "a", "label": "x"}, ["not", "an", "object"], {"title": "b"}])
    with pytest.raises(StageError, match="line 6: expected an object"):
        read_records(g, **KW)
    recs, rep = read_records(g, **KW, invalid_records="skip")
    assert len(recs) == 1 and rep.skipped == {"malformed": 2}
    assert any("field 'label' is missing" in e for e in rep.examples)


def test_empty_title_is_a_counted_skip_or_an_error(tmp_path: Path) -> None:
    f = write_json(tmp_path / "t.json", [{"title": "  ", "label": "x"}, {"title": "b", "label": "y"}])
    recs, rep = read_records(f, **KW)
    assert [r.text for r in recs] == ["b"] and rep.skipped == {"empty_text": 1}
    assert rep.as_dict()["skipped_total"] == 1
    with pytest.raises(StageError, match=r"line 2: field 'title' is empty .*empty_text: skip"):
        read_records(f, **KW, empty_text="error")


def test_json_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text('[\n  {"title": "a", "label": "x"},\n  {"title": "b" "label": "y"}\n]\n', encoding="utf-8")
    with pytest.raises(StageError, match=r"t.json: line 3 column \d+: not valid JSON"):
        read_records(f, **KW, invalid_records="skip")
    f.write_text('{"title": "a"}', encoding="utf-8")
    with pytest.raises(StageError, match="expected a JSON array"):
        read_records(f, **KW)


def test_json_lines_and_csv_need_only_params(tmp_path: Path) -> None:
    jl = tmp_path / "d.jsonl"
    jl.write_text('{"text": "가", "topic": 3}\n\n{"text": "나", "topic": "b"}\n{bad json\n', encoding="utf-8")
    with pytest.raises(StageError, match="d.jsonl: line 4 column 2: not valid JSON"):
        read_records(jl, text_field="text", label_field="topic")
    recs, rep = read_records(jl, text_field="text", label_field="topic", invalid_records="skip")
    assert [(r.text, r.label, r.line) for r in recs] == [("가", "3", 1), ("나", "b", 3)]
    assert rep.skipped == {"malformed": 1}
    csv_file = tmp_path / "d.csv"
    csv_file.write_text('index,title,topic\n0,"쉼표, 있는 제목",경제\n1,두 번째\n2,세 번째,사회\n', encoding="utf-8")
    with pytest.raises(StageError, match="d.csv: line 3: 2 columns, the header has 3"):
        read_records(csv_file, text_field="title", label_field="topic")
    recs, rep = read_records(csv_file, text_field="title", label_field="topic", invalid_records="skip")
    assert [(r.text, r.label, r.line) for r in recs] == [("쉼표, 있는 제목", "경제", 2), ("세 번째", "사회", 4)]
    with pytest.raises(StageError, match="line 1: the header has no column 'label'"):
        read_records(csv_file, text_field="title", label_field="label")


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(StageError, match="finetune.task.format"):
        read_records(tmp_path / "x.parquet", **KW)
    with pytest.raises(FileNotFoundError, match="no such dataset file"):
        read_records(tmp_path / "nope.json", **KW)


def test_dev_label_missing_from_train_is_an_error_or_counted() -> None:
    train = [Record("a", "정치", 2), Record("b", "경제", 3)]
    dev = [Record("c", "정치", 2), Record("d", "세계", 7)]
    with pytest.raises(StageError, match=r"dev.json: line 7: field label: '세계' does not occur in train"):
        check_labels(train, dev, "dev.json", "error")
    labels, kept, unseen = check_labels(train, dev, "dev.json", "skip")
    assert labels == ["경제", "정치"] and [r.text for r in kept] == ["c"] and unseen == 1
    with pytest.raises(StageError, match="at least 2"):
        check_labels(train[:1], dev, "dev.json", "skip")


def test_tsv_by_suffix_or_format_and_any_delimiter(tmp_path: Path) -> None:
    body = "id\tdocument\tlabel\na\t좋은 영화, 정말\t1\nb\t별로\t0\n"
    for name, fmt in (("t.tsv", "auto"), ("t.txt", "tsv")):
        f = tmp_path / name
        f.write_text(body, encoding="utf-8")
        recs, _ = read_records(f, text_field="document", label_field="label", id_field="id", fmt=fmt)
        assert [(r.id, r.text, r.label) for r in recs] == [("a", "좋은 영화, 정말", "1"), ("b", "별로", "0")]
    g = tmp_path / "t.csv"
    g.write_text(body.replace("\t", ";"), encoding="utf-8")
    recs, _ = read_records(g, text_field="document", label_field="label", delimiter=";")
    assert [r.label for r in recs] == ["1", "0"]


def test_integer_labels_in_json_lines(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text('{"title": "a", "label": 0}\n{"title": "b", "label": 2}\n', encoding="utf-8")
    recs, _ = read_records(f, text_field="title", label_field="label")
    assert [r.label for r in recs] == ["0", "2"]
    f.write_text('{"title": "a", "label": true}\n', encoding="utf-8")
    with pytest.raises(StageError, match="field 'label' must be a string, got bool"):
        read_records(f, text_field="title", label_field="label")


def test_csv_unclosed_quote_is_a_stage_error_naming_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text('title,label\n"never closed,x\n' + "a,b\n" * 40_000, encoding="utf-8")
    with pytest.raises(StageError, match=r"t.csv: line \d+: not valid CSV: .*unclosed quote"):
        read_records(f, text_field="title", label_field="label")
