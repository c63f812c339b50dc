"""Sanitizing, sentence rules and the Tokenizer (MeCab-ko by default; Okt/Komoran through Java)."""

from __future__ import annotations

import random

import pytest

from elmo.errors import StageError
from elmo.text import Tokenizer, sanitize as sanitize_mod
from elmo.text.sanitize import lines, sanitize
from elmo.text.sentences import split_sentences


def _slow_sanitize(text: str) -> str:
    """The definition, without the fast path."""
    import unicodedata

    text = "".join(c for c in text if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf"))
    text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def test_sanitize_removes_controls_and_normalises_space() -> None:
    assert sanitize("  청원\u200b합니다\u00a0\u3000 a\tb\r\nc\x00 ") == "청원합니다 a b c"
    assert sanitize("\ufeff") == ""
    decomposed = "\u1112\u1161\u11ab"  # 한 as conjoining jamo
    assert sanitize(decomposed) == "한"


def test_sanitize_fast_path_matches_definition() -> None:
    rng = random.Random(0)
    alphabet = list("청원합니다 abc123.?!😀ㅋ") + ["\u200b", "\u00a0", "\u3000", "\t", "\n", "\x00", "\u2028",
                                                "\u1100", "\u1161", "\u00ad", "  "]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert sanitize(text) == _slow_sanitize(text), repr(text)
        assert sanitize(sanitize(text)) == sanitize(text)
        assert " ".join(lines(text)) == sanitize(text) or "\n" in text or "\u2028" in text


def test_lines_break_on_every_line_separator() -> None:
    assert lines("가\n나\r\n\n다\u2028라\x85 마 ") == ["가", "나", "다", "라", "마"]
    assert lines(" \n \t") == []
    assert sanitize_mod._REMOVE.search("\u200d") is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("안녕하세요. 청원합니다.", ["안녕하세요.", "청원합니다."]),
        ("정말요?! 네!! 그래요", ["정말요?!", "네!!", "그래요"]),
        ("비율은 3.5%입니다 그리고 끝", ["비율은 3.5%입니다", "그리고 끝"]),  # 니다 ends a sentence
        ("1. 첫째 요구 2. 둘째 요구", ["1. 첫째 요구 2. 둘째 요구"]),  # enumerators
        ('그는 "정말이요?" 라고 했다. 끝', ['그는 "정말이요?"', "라고 했다.", "끝"]),
        ("www.korea.kr 에서 확인", ["www.korea.kr 에서 확인"]),
        ("첫 줄\n둘째 줄", ["첫 줄", "둘째 줄"]),
        ("기다립니다 . 그리고", ["기다립니다 .", "그리고"]),  # no split before punctuation
        ("", []),
    ],
)
def test_sentence_rules(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_tokenize_mecab_default() -> None:
    tok = Tokenizer()
    assert tok.tokenize("영등포구청역에 있는 맛집 좀 알려주세요.") == [
        "영등포구청역", "에", "있", "는", "맛집", "좀", "알려", "주", "세요", "."]
    assert Tokenizer(pos_tags=True).tokenize("맛집 알려주세요.") == [
        "맛집/NNG", "알려/VV+EC", "주/VX", "세요/EP+EF", "./SF"]
    assert tok.tokenize("   ") == []


def test_no_token_holds_whitespace() -> None:
    """MeCab-ko keeps a trailing space on some surfaces ('에듀 '); tokens never do."""
    tok = Tokenizer()
    surfaces, _ = tok.tagger.pos("K-에듀 완성을 위한")
    assert "에듀 " in surfaces  # the quirk is real ...
    tokens = tok.tokenize("K-에듀 완성을 위한")
    assert "에듀" in tokens and all(t and not any(c.isspace() for c in t) for t in tokens)  # ... and handled


def test_long_sentences_are_cut_at_endings_or_hard() -> None:
    tok = Tokenizer(max_sentence_tokens=12)
    text = "나는 학교에 갔다 그리고 친구를 만났다 우리는 함께 밥을 먹었다 그리고 집에 돌아왔다"
    full = tok.tokenize(text)
    pieces, cut = tok.analyse_text(text)
    assert cut == 1 and len(pieces) > 1
    assert [t for p in pieces for t in p] == full  # nothing lost, order kept
    assert all(1 <= len(p) <= 12 for p in pieces)
    assert pieces[0][-1] in ("갔다", "만났다") or pieces[0][-1].endswith("다")  # cut after an ending
    hard = Tokenizer(max_sentence_tokens=8)
    nums = " ".join(str(i) for i in range(30))  # no endings at all: hard cuts
    pieces = hard.tokenize_text(nums)
    assert [len(p) for p in pieces] == [8, 8, 8, 6]


def test_config_round_trip_and_pickle() -> None:
    import pickle

    tok = Tokenizer(tagger="mecab", pos_tags=True, max_sentence_tokens=50)
    again = Tokenizer.from_config(tok.config())
    assert again.config() == tok.config()
    tok.tokenize("확인")
    clone = pickle.loads(pickle.dumps(tok))
    assert clone.config() == tok.config() and clone.tokenize("확인합니다") == tok.tokenize("확인합니다")
    with pytest.raises(StageError, match="unknown tagger 'kkma'"):
        Tokenizer(tagger="kkma")
    with pytest.raises(StageError, match="lacks pos_tags"):
        Tokenizer.from_config({"tagger": "mecab", "max_sentence_tokens": 5})


def test_mecabrc_is_set_up_by_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    from elmo.text.mecab import dictionary_dir, konlpy_mecab

    monkeypatch.setenv("MECABRC", "/nonexistent/mecabrc")
    m = konlpy_mecab()
    import os

    assert os.environ["MECABRC"] == str(dictionary_dir() / "dicrc")
    assert m.pos("청원") == [("청원", "NNG")]
    monkeypatch.delenv("MECABRC")
    assert Tokenizer().tokenize("청원합니다")  # the fast path needs no MECABRC at all


def test_java_taggers_need_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(StageError, match="no Java runtime was found"):
        Tokenizer(tagger="okt").tokenize("안녕")


@pytest.mark.slow
@pytest.mark.parametrize("tagger", ["okt", "komoran"])
def test_java_taggers(tagger: str) -> None:
    import shutil

    if shutil.which("java") is None:
        pytest.skip("no java on PATH")
    tok = Tokenizer(tagger=tagger, pos_tags=True)
    tokens = tok.tokenize("아버지가 방에 들어가신다. 나는 학교에 갔다")
    assert tokens and all("/" in t and " " not in t for t in tokens)
    assert any(t.startswith("아버지/") for t in tokens)
    assert len(Tokenizer(tagger=tagger).tokenize_text("안녕하세요. 반갑습니다.")) == 2
    emoji = Tokenizer(tagger=tagger).tokenize("좋아요😀😀 최고 👍")  # Komoran cannot hand emoji back
    assert "😀😀" in "".join(emoji) and "👍" in "".join(emoji) and "최고" in emoji
