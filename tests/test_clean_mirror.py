"""Data tests on the real mirror: crawl (local path) + clean, then check the table itself."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import polars as pl
import pytest

from elmo.params import parse_params
from elmo.stages import clean, crawl
from elmo.text.normalize import CONTROL, ZERO_WIDTH

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def table(shared_data: Path, tmp_path_factory) -> tuple[pl.DataFrame, dict]:
    root = tmp_path_factory.mktemp("mirror")
    params = parse_params({"crawl": {"source": str(shared_data / "petitions_archive")}})
    crawl.run(params, root)
    report = clean.run(params, root)
    return pl.read_parquet(root / params.clean.out_parquet), report


def test_every_petition_is_accounted_for(table):
    df, report = table
    assert report["read"] == 12550 == report["kept"] + report["duplicates"] + report["quarantined"]
    assert df.height == report["kept"] and df["petition_idx"].is_unique().all()


def test_text_is_normalised(table):
    df, _ = table
    for col in ("title", "content"):
        s = df[col]
        assert not s.str.contains("관리자에 의해 수정되었습니다").any()
        assert not s.str.contains("'숨김' 처리 되었습니다").any()
        assert not s.str.contains(ZERO_WIDTH).any() and not s.str.contains(CONTROL).any()
        assert not s.str.contains(r"\s{2,}|^\s|\s$|[\t\n\u00A0]").any()
        assert not s.str.contains(r"\*{4,}|○{2,}").any()  # masks are one placeholder
        assert all(unicodedata.is_normalized("NFC", t) for t in s.to_list())
    assert df["content"].str.contains(r"\*\*\*", literal=False).sum() > 1000  # masks kept, as ***
    assert (df["title"] != "").all()


def test_values_are_sane_and_splits_are_near_their_fractions(table):
    df, _ = table
    assert (df["begin"] <= df["end"]).all() and (df["num_agree"] >= 0).all()
    assert df["begin"].min().year == 2017 and df["begin"].max().year == 2020
    assert (df["category"] != "").all() and set(df["status"]) == {"청원종료", "청원진행중", "브리핑"}
    share = df["split"].value_counts(normalize=True).to_dict(as_series=False)
    share = dict(zip(share["split"], share["proportion"]))
    assert abs(share["valid"] - 0.05) < 0.01 and abs(share["test"] - 0.05) < 0.01
