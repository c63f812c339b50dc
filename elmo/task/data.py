"""Labeled text datasets: JSON (an array of objects, as KLUE ships), JSON lines, CSV or TSV.

``read_records(path, spec)`` returns the usable records and a count of what was skipped. Which
field holds the text and which the label is a param (``finetune.task.text_field`` /
``label_field``), so another labeled dataset needs no code. Every problem names the file, the
line (1-based; for a JSON array, the line where the record starts) and the field:

* a record that is not an object (or a CSV row with the wrong number of columns), a missing text
  or label field, or one of the wrong type -> ``StageError`` (``invalid_records: error``) or a
  counted skip (``skip``);
* an empty text (after normalisation) -> a counted skip (``empty_text: skip``) or an error;
* a JSON syntax error, or a CSV/TSV the csv module cannot read -> always an error (nothing after
  it can be trusted); an unclosed quote is named by the line where it opened (also when a later
  quote closes it: a record that runs over several lines to the wrong number of columns).

CSV and TSV have a header row naming the columns; the separator is ``,`` for csv, a tab for tsv, or
``finetune.task.delimiter``. Labels may be strings or integers (``0``, ``1``, ... in JSON, or any
text in CSV/TSV); they are compared as strings. Texts go through the text pipeline's normaliser
(``elmo.text.pipeline``: the biLM's, as the pretraining corpus did); what it changed is counted in
the read report (``normalisation``, in ``metrics/finetune.json`` under ``data``).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elmo.errors import StageError
from elmo.text.pipeline import TextPipeline

FORMATS = ("json", "jsonl", "csv", "tsv")
SUFFIXES = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv"}


@dataclass(frozen=True)
class Record:
    text: str
    label: str
    line: int  # 1-based line in the source file
    id: str | None = None
    raw: str | None = None  # the text as in the file (``text`` is it normalised by the text pipeline)


@dataclass
class ReadReport:
    file: str
    records: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    examples: list[str] = field(default_factory=list)  # the first few skipped, as "file:line: why"
    normalisation: dict[str, int] = field(default_factory=dict)  # what the text pipeline's normaliser changed

    def skip(self, reason: str, where: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples) < 5:
            self.examples.append(where)

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "records": self.records, "skipped": dict(self.skipped),
                "skipped_total": sum(self.skipped.values()), "skipped_examples": self.examples,
                "normalisation": dict(self.normalisation)}


class _Bad(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def detect_format(path: Path, fmt: str = "auto") -> str:
    if fmt != "auto":
        if fmt not in FORMATS:
            raise StageError(f"unknown dataset format {fmt!r} (one of auto, {', '.join(FORMATS)})")
        return fmt
    suffix = path.suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    raise StageError(f"{path}: cannot tell the format from the suffix {suffix!r}; set finetune.task.format "
                     f"({', '.join(FORMATS)})")


def _iter_json_array(path: Path) -> Iterator[tuple[int, Any]]:
    text = path.read_text(encoding="utf-8-sig")
    dec = json.JSONDecoder()
    n = len(text)

    def skip_ws(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    def fail(i: int, what: str) -> StageError:
        line = text.count("\n", 0, i) + 1
        col = i - (text.rfind("\n", 0, i) + 1) + 1
        return StageError(f"{path}: line {line} column {col}: not valid JSON: {what}")

    i = skip_ws(0)
    if i >= n or text[i] != "[":
        raise fail(i, "expected a JSON array of records ('[')")
    i = skip_ws(i + 1)
    line, last = 1, 0
    if i < n and text[i] == "]":
        if skip_ws(i + 1) != n:
            raise fail(skip_ws(i + 1), "extra data after the array")
        return
    while True:
        line += text.count("\n", last, i)
        last = i
        try:
            obj, end = dec.raw_decode(text, i)
        except json.JSONDecodeError as err:
            raise fail(err.pos, err.msg) from None
        yield line, obj
        i = skip_ws(end)
        if i < n and text[i] == ",":
            i = skip_ws(i + 1)
            continue
        if i < n and text[i] == "]":
            if skip_ws(i + 1) != n:
                raise fail(skip_ws(i + 1), "extra data after the array")
            return
        raise fail(i, "expected ',' or ']' after a record")


def _iter_jsonl(path: Path, report: ReadReport, policy: str) -> Iterator[tuple[int, Any]]:
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as err:
                msg = f"{path}: line {lineno} column {err.colno}: not valid JSON: {err.msg}"
                if policy == "error":
                    raise StageError(msg) from None
                report.skip("malformed", msg)


def _iter_csv(path: Path, report: ReadReport, policy: str, required: list[str], delimiter: str,
              ) -> Iterator[tuple[int, Any]]:
    kind = "TSV" if delimiter == "\t" else "CSV"
    with open(path, encoding="utf-8-sig", newline="") as fh:
        # strict: a closing quote followed by anything but the separator is an error, so an unclosed
        # quote cannot silently swallow the lines up to some later quote
        reader = csv.reader(fh, delimiter=delimiter, strict=True)
        yield from _csv_rows(path, reader, report, policy, required, kind)


def _unclosed(path: Path, kind: str, opened: int, upto: int, detail: str) -> StageError:
    return StageError(f"{path}: line {opened}: not valid {kind}: unclosed quote (the quoted field opened on "
                      f"line {opened} is still open at line {upto}: {detail}); whatever "
                      "finetune.task.invalid_records says, nothing after it can be trusted")


def _csv_rows(path: Path, reader, report: ReadReport, policy: str, required: list[str], kind: str,
              ) -> Iterator[tuple[int, Any]]:
    start = 1  # the line the next record starts on

    def read() -> list[str] | None:
        try:
            return next(reader)
        except StopIteration:
            return None
        except csv.Error as err:
            if reader.line_num > start or "unexpected end of data" in str(err):
                raise _unclosed(path, kind, start, reader.line_num, str(err)) from None
            raise StageError(f"{path}: line {start}: not valid {kind}: {err} (a quote inside a quoted field "
                             "is written twice; finetune.task.delimiter sets the separator)") from None

    header = read()
    if header is None:
        return
    missing = [f for f in required if f not in header]
    if missing:
        raise StageError(f"{path}: line 1: the header has no column {', '.join(map(repr, missing))} "
                         f"(columns: {', '.join(header)})")
    start = reader.line_num + 1
    while (row := read()) is not None:
        lineno, start = start, reader.line_num + 1
        if not row or row == [""]:
            continue
        if len(row) != len(header):
            if reader.line_num > lineno:  # one record over several lines, the wrong width: a quote ran on
                raise _unclosed(path, kind, lineno, reader.line_num,
                                f"the record has {len(row)} columns, the header {len(header)}")
            msg = f"{path}: line {lineno}: {len(row)} columns, the header has {len(header)}"
            if policy == "error":
                raise StageError(msg)
            report.skip("malformed", msg)
            continue
        yield lineno, dict(zip(header, row))


def _field(obj: Any, name: str, where: str, *, allow_int: bool = False) -> str:
    if not isinstance(obj, dict):
        raise _Bad("malformed", f"{where}: expected an object (record), got {type(obj).__name__}")
    if name not in obj:
        raise _Bad("malformed", f"{where}: field {name!r} is missing")
    value = obj[name]
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _Bad("malformed", f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    return value


def read_records(path: str | Path, *, text_field: str, label_field: str, id_field: str | None = None,
                 fmt: str = "auto", invalid_records: str = "error", empty_text: str = "skip",
                 delimiter: str | None = None, pipeline: TextPipeline | None = None) -> tuple[list[Record], ReadReport]:
    """Records of a labeled dataset file and what was skipped (see the module docstring). Texts are
    normalised by ``pipeline`` (the biLM's text pipeline; the default one when None)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such dataset file (run `elmo fetch_task`)")
    fmt = detect_format(path, fmt)
    report = ReadReport(str(path))
    if fmt == "json":
        rows = _iter_json_array(path)
    elif fmt == "jsonl":
        rows = _iter_jsonl(path, report, invalid_records)
    else:
        sep = delimiter or ("\t" if fmt == "tsv" else ",")
        rows = _iter_csv(path, report, invalid_records, [text_field, label_field], sep)
    pending: list[tuple[int, str, str, str, Any]] = []  # (line, where, raw text, label, id)

    def bad_record(bad: _Bad) -> None:
        policy = empty_text if bad.reason == "empty_text" else invalid_records
        if policy == "error":
            hint = "finetune.task.empty_text" if bad.reason == "empty_text" else "finetune.task.invalid_records"
            raise StageError(f"{bad} (set {hint}: skip to count and skip such records)") from None
        report.skip(bad.reason, str(bad))

    try:
        for line, obj in rows:
            where = f"{path}: line {line}"
            try:
                text = _field(obj, text_field, where)
                label = _field(obj, label_field, where, allow_int=True).strip()
                if not label:
                    raise _Bad("malformed", f"{where}: field {label_field!r} is empty")
                rid = obj.get(id_field) if id_field else None
            except _Bad as bad:
                bad_record(bad)
                continue
            pending.append((line, where, text, label, rid))
    except UnicodeDecodeError as err:
        raise StageError(f"{path}: not UTF-8 text: {err}") from None
    except RecursionError:
        raise StageError(f"{path}: a record is nested too deeply to read") from None
    # the text pipeline's normaliser, on every text at once (what the models see; counted)
    texts, report.normalisation = (pipeline or TextPipeline()).normalize_counted([p[2] for p in pending])
    out: list[Record] = []
    for (line, where, raw, label, rid), text in zip(pending, texts):
        if not text:
            bad_record(_Bad("empty_text", f"{where}: field {text_field!r} is empty"))
            continue
        out.append(Record(text=text, label=label, line=line, id=None if rid is None else str(rid), raw=raw))
    report.records = len(out)
    if not out:
        raise StageError(f"{path}: no usable records ({sum(report.skipped.values())} skipped)")
    return out, report


def check_labels(train: list[Record], dev: list[Record], dev_file: str, policy: str
                 ) -> tuple[list[str], list[Record], int]:
    """The label set (sorted train labels) and the dev records kept.

    A dev label absent from train is an error naming the file, line and label (``policy='error'``)
    or its records are counted and skipped (``'skip'``).
    """
    labels = sorted({r.label for r in train})
    if len(labels) < 2:
        raise StageError(f"the train set has {len(labels)} label(s); a classifier needs at least 2")
    known = set(labels)
    unseen = [r for r in dev if r.label not in known]
    if unseen and policy == "error":
        names = sorted({r.label for r in unseen})
        first = unseen[0]
        raise StageError(f"{dev_file}: line {first.line}: field label: {first.label!r} does not occur in train "
                         f"({len(unseen)} dev record(s) with unseen label(s) {', '.join(map(repr, names))}; "
                         f"set finetune.task.unseen_dev_labels: skip to count and skip them)")
    kept = [r for r in dev if r.label in known]
    return labels, kept, len(unseen)
