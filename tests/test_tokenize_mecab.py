"""The fast MeCab-ko path gives exactly konlpy's ``Mecab.pos`` (same tagger, same dictionary)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from elmo.text.mecab import MecabTagger, konlpy_mecab
from elmo.text.sentences import split_sentences

SENTENCES = [
    "자연주의 쇼핑몰은 어떤 곳인가?",
    "영등포구청역에 있는 맛집 좀 알려주세요.",
    "COVID-19 확진자가 2020년 3월 1일 기준 3,736명입니다.",
    "ㅋㅋㅋ 진짜 😀😀 어이없네요!!!",
    "大韓民國 憲法 第1條 ① 대한민국은 민주공화국이다.",
    "https://www.president.go.kr/petitions/589262 참고 바랍니다.",
    "K-에듀 완성을 위한 조각의 하나였는지",
    "이메일: test@example.com / 전화: 010-1234-5678",
    "“따옴표” ‘작은따옴표’ 「괄호」 (소괄호) [대괄호]",
    "아",
    "가나다라마바사아자차카타파하" * 20,
]


def _pairs(tagger: MecabTagger, sentence: str) -> list[tuple[str, str]]:
    surfaces, tags = tagger.pos(sentence)
    return list(zip(surfaces, tags))


def test_fast_path_equals_konlpy_on_varied_sentences() -> None:
    fast, ref = MecabTagger(), konlpy_mecab()
    for s in SENTENCES:
        assert _pairs(fast, s) == ref.pos(s), s


@pytest.mark.slow
def test_fast_path_equals_konlpy_on_the_mirror(shared_data: Path) -> None:
    """Every sentence of the first 40 petitions of each mirrored month (~8k sentences)."""
    fast, ref = MecabTagger(), konlpy_mecab()
    months = sorted((shared_data / "petitions_archive").glob("petitions_*"))
    assert len(months) >= 10
    n = chars = 0
    for month in months:
        with month.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i == 40:
                    break
                record = json.loads(line)
                for field in ("title", "content"):
                    for s in split_sentences(record[field]):
                        assert _pairs(fast, s) == ref.pos(s), f"{month.name} line {i + 1} {field}: {s[:80]}"
                        n += 1
                        chars += len(s)
    assert n > 3_000 and chars > 200_000
