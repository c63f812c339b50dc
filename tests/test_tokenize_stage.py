"""The tokenize stage: outputs, determinism (runs, workers, fan-out shards), bad input, atomicity."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml

from elmo.errors import StageError
from elmo.params import parse_params
from elmo.stages import tokenize as stage
from elmo.text import corpus, parallel

TEXTS = [
    ("학교 급식 개선을 요청합니다", "아이들이 먹는 급식의 질이 너무 낮습니다. 개선을 부탁드립니다! 감사합니다."),
    ("COVID-19 대응", "확진자가 2020년 3월 기준 3,736명입니다 정부는 무엇을 하고 있습니까? 😀 ㅋㅋ"),
    ("", None),  # nothing to tokenize: counted, not an error
    ("긴 글", "흡연카드 의무적으로 발급해야 담배 구입 가능 발급 방법 주민등록증 확인 또는 자신을 증명 할 수 있는 "
             "자격증 운전 면허증 가능 추가 인증 휴대폰 본인인증 타인의 흡연카드 사용 불가 발급을 하려면 담배를 "
             "판매하는 판매점에서 발급 또는 흡연카드 담배구입한 횟수 등 계산해서 자신이 지출한 담배 금액 등 알려주는 "
             "서비스 제공 성인 담배 율 조사 의학자료 등 활용 가능 또는 앱 서비스도 제공 판매자는 흡연카드를 "
             "코드인식을 하고 인적사항 등 확인 마지막으로 휴대폰 인증번호 3자리 숫자를 입력과 자필 사인 등 해야 한다"),
    ("English title", "The petition asks for more parks. 공원을 늘려 주세요."),
    ("대통령님께", "1. 첫째 요구입니다 2. 둘째 요구입니다\n새 줄의 문장"),
    ("K-에듀", "K-에듀 완성을 위한 조각의 하나였는지 묻고 싶습니다."),
    ("부동산", "집값이 너무 올랐습니다. 대책을 세워 주십시오."),
    ("청원", "같은 내용의 청원이 많습니다. 그래도 다시 올립니다."),
    ("마스크", "마스크 5부제를 시행해 주세요. 약국 앞 줄이 깁니다."),
    ("교통", "출퇴근 시간 지하철이 너무 붐빕니다. 증차해 주세요."),
    ("환경", "미세먼지 대책이 필요합니다. 아이들이 밖에서 놀 수 없습니다."),
]
SPLITS = ["train", "valid", "train", "test", "train", "train", "valid", "train", "test", "train", "train", "train"]


def write_petitions(path: Path, rows: list[tuple[str, str | None]] = TEXTS, splits: list[str] = SPLITS,
                    **overrides) -> Path:
    n = len(rows)
    data = {
        "petition_idx": [1000 - 7 * i for i in range(n)],  # not sorted: the stage sorts
        "title": [r[0] for r in rows],
        "content": [r[1] for r in rows],
        "category": ["기타"] * n,
        "status": ["청원종료"] * n,
        "begin": [datetime.date(2020, 1, 1)] * n,
        "end": [datetime.date(2020, 1, 31)] * n,
        "num_agree": list(range(n)),
        "source_file": ["petitions_2020-01"] * n,
        "source_line": list(range(1, n + 1)),
        "split": splits,
    }
    data.update(overrides)
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(data, schema_overrides={"petition_idx": pl.Int64, "num_agree": pl.Int64, "source_line": pl.Int64,
                                         "content": pl.Utf8}).write_parquet(path)
    return path


def _params(**tokenize):
    return parse_params({"tokenize": tokenize})


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    write_petitions(tmp_path / "data/interim/petitions.parquet")
    return tmp_path


def test_outputs_schema_and_counts(ws: Path) -> None:
    report = stage.run(_params(workers=1), ws)
    out = ws / "data/processed/sentences"
    assert sorted(p.name for p in out.iterdir()) == [
        "test.parquet", "text_pipeline.json", "tokenizer.json", "train.parquet", "valid.parquet"]
    frames = {s: pl.read_parquet(out / f"{s}.parquet") for s in ("train", "valid", "test")}
    ids = dict(zip([1000 - 7 * i for i in range(len(TEXTS))], SPLITS))
    for split, df in frames.items():
        assert df.schema == pl.Schema({"petition_idx": pl.Int64, "sentence_idx": pl.Int32, "tokens": pl.List(pl.Utf8)})
        assert df.select(pl.struct("petition_idx", "sentence_idx").is_unique().all()).item()
        assert df.equals(df.sort("petition_idx", "sentence_idx"))
        assert all(ids[i] == split for i in df["petition_idx"].unique())
        # sentence_idx runs 0..n-1 within each petition
        per = df.group_by("petition_idx").agg(pl.col("sentence_idx").max() + 1 == pl.len())
        assert per[per.columns[1]].all()
        assert df["tokens"].list.len().min() >= 1 and df["tokens"].list.len().max() <= 100
    metrics = yaml.safe_load((ws / "metrics/tokenize.json").read_text())
    assert metrics["total"]["petitions"] == len(TEXTS)
    assert metrics["total"]["null_fields"] == 1 and metrics["splits"]["train"]["petitions_without_tokens"] == 1
    assert metrics["total"]["chars"] == sum(len(t) + len(c or "") for t, c in TEXTS)
    for split, df in frames.items():
        assert metrics["splits"][split]["sentences"] == df.height
        assert metrics["splits"][split]["tokens"] == int(df["tokens"].list.len().sum())
    assert report["total"] == metrics["total"] and report["chars_per_s"] > 0
    empty = frames["train"].filter(pl.col("petition_idx") == 986)  # row 2: empty title, null content
    assert empty.height == 0
    title = frames["valid"].filter((pl.col("petition_idx") == 993) & (pl.col("sentence_idx") == 0))["tokens"][0]
    assert title.to_list() == ["COVID", "-", "19", "대응"]


def test_byte_identical_across_runs_and_workers(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "SHARD_CHARS", 150)  # many shards, to exercise the ordering
    monkeypatch.setattr(parallel, "ROW_GROUP_ROWS", 7)
    out = ws / "data/processed/sentences"
    stage.run(_params(workers=1), ws)
    one, metrics_one = _digest(out), (ws / "metrics/tokenize.json").read_bytes()
    assert pq.ParquetFile(out / "train.parquet").metadata.num_row_groups > 1
    stage.run(_params(workers=1), ws)
    assert _digest(out) == one
    stage.run(_params(workers=2), ws)  # spawned worker processes
    assert _digest(out) == one and (ws / "metrics/tokenize.json").read_bytes() == metrics_one


def test_fan_out_shards_give_the_same_bytes(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "ROW_GROUP_ROWS", 5)
    monkeypatch.setattr(corpus, "FANOUT_SHARD_CHARS", 200)
    params = _params(workers=1)
    out = ws / "data/processed/sentences"
    stage.run(params, ws)
    direct = _digest(out)
    shards = stage.plan_shards(params, ws)
    assert len(shards) > 2 and shards[0]["start"] == 0 and shards[-1]["stop"] == len(TEXTS)
    assert all(a["stop"] == b["start"] for a, b in zip(shards, shards[1:]))
    results = [stage.run_shard(params, ws, s) for s in reversed(shards)]  # any order
    report = stage.finish_shards(params, ws, results)
    assert _digest(out) == direct
    assert not (ws / "data/processed/sentences.shards").exists()
    assert report["total"]["petitions"] == len(TEXTS)
    with pytest.raises(StageError, match="do not cover all"):
        stage.finish_shards(params, ws, results[1:])


def test_failure_leaves_previous_output(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = ws / "data/processed/sentences"
    stage.run(_params(workers=1), ws)
    before = _digest(out)
    monkeypatch.setattr(parallel, "SHARD_CHARS", 100)
    calls = {"n": 0}
    real = parallel.tokenize_shard

    def flaky(shard):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("tagger crashed")
        return real(shard)

    monkeypatch.setattr(parallel, "tokenize_shard", flaky)
    with pytest.raises(RuntimeError, match="tagger crashed"):
        stage.run(_params(workers=1), ws)
    assert _digest(out) == before
    assert [p.name for p in out.parent.iterdir()] == ["sentences"]  # no temporary left behind


def _expect(ws: Path, match: str, exc=StageError) -> None:
    with pytest.raises(exc, match=match):
        stage.run(_params(workers=1), ws)


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    path = tmp_path / "data/interim/petitions.parquet"
    _expect(tmp_path, r"petitions.parquet: no such file .*clean", FileNotFoundError)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    _expect(tmp_path, rf"{path}: empty file \(0 bytes\)")
    path.write_bytes(b"PAR1 this is not parquet at all" * 10)
    _expect(tmp_path, rf"{path}: not a readable parquet file")
    good = write_petitions(tmp_path / "good.parquet").read_bytes()
    path.write_bytes(good[: len(good) // 2])  # truncated
    _expect(tmp_path, rf"{path}: not a readable parquet file")
    pl.read_parquet(tmp_path / "good.parquet").drop("split").write_parquet(path)
    _expect(tmp_path, rf"{path}: missing column\(s\) split")
    pl.read_parquet(tmp_path / "good.parquet").head(0).write_parquet(path)
    _expect(tmp_path, rf"{path}: has no rows")
    splits = list(SPLITS)
    splits[4] = "trian"
    write_petitions(path, splits=splits)
    _expect(tmp_path, rf"{path}: row 4 \(petitions_2020-01 line 5\): field split is 'trian'")
    write_petitions(path, petition_idx=[5] * len(TEXTS))
    _expect(tmp_path, rf"{path}: field petition_idx 5 appears more than once \(row 0 .* and row 1")
    write_petitions(path, petition_idx=[1, None] + list(range(2, len(TEXTS))))
    _expect(tmp_path, rf"{path}: row 1 \(petitions_2020-01 line 2\): field petition_idx is null")
    frame = pl.read_parquet(tmp_path / "good.parquet")
    frame.with_columns(pl.col("title").str.len_chars().alias("title")).write_parquet(path)
    _expect(tmp_path, rf"{path}: column title has type")
    assert not (tmp_path / "data/processed").exists()


def test_cli_prints_one_line_and_exits_2(tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from elmo.cli import app

    (tmp_path / "params.yaml").write_text((repo_root / "params.yaml").read_text())
    bad = tmp_path / "data/interim/petitions.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["tokenize"])
    assert result.exit_code == 2
    assert "data/interim/petitions.parquet: empty file" in result.output
    assert "Traceback" not in result.output
