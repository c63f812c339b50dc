"""A tiny, randomly initialised biLM saved with a real Vocabulary: the fixture of the embed, task and
finetune tests (seconds on CPU). Not a test module (no ``test_`` prefix)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

HEADLINES = {
    "IT과학": ["삼성전자 새 스마트폰 공개", "인공지능 반도체 개발 성공", "구글 클라우드 서비스 출시",
               "카카오 새 앱 업데이트", "과학자들 새 위성 발사 성공", "네이버 인공지능 검색 서비스"],
    "스포츠": ["손흥민 시즌 첫 골 기록", "야구 대표팀 결승 진출", "축구 국가대표 평가전 승리",
               "프로농구 개막전 승리", "올림픽 양궁 금메달 획득", "골프 선수 우승 차지"],
    "정치": ["대통령 국회 시정연설", "여야 원내대표 회동", "국회 예산안 통과",
             "총리 후보자 청문회 열려", "정당 지도부 선거 시작", "국회의원 법안 발의"],
}


def corpus_tokens(tokenizer) -> list[list[str]]:
    return [tokenizer.tokenize(t) for texts in HEADLINES.values() for t in texts]


def make_vocab(tokenizer, unit: str = "jamo", max_chars: int = 12):
    from elmo.vocab.chars import CharVocab
    from elmo.vocab.vocabulary import Vocabulary
    from elmo.vocab.words import WordVocab

    sents = corpus_tokens(tokenizer)
    counts = Counter(w for s in sents for w in s)
    pairs = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    words = WordVocab.build(pairs, min_count=1, max_size=10_000, n_sentences=len(sents),
                            n_tokens=sum(counts.values()))
    chars = CharVocab.build(unit, pairs, max_chars, min_count=1)
    return Vocabulary(words, chars, tokenizer.config())


def make_bilm_dir(tmp: Path, tokenizer, seed: int = 0, projection_dim: int = 8) -> Path:
    """tmp/bilm: a tiny random BiLM saved with its vocabulary (BiLM.save copies vocab/ in)."""
    from elmo.contracts import TEXT_PIPELINE_FILE
    from elmo.model import BiLM, BiLMConfig
    from elmo.text.pipeline import TextPipeline

    vocab = make_vocab(tokenizer)
    # the vocab stage saves the corpus's text pipeline with the vocabulary: the default normaliser here
    pipeline = TextPipeline(tokenizer=tokenizer.config())
    vocab_dir = vocab.save(tmp / "vocab", extra_json={TEXT_PIPELINE_FILE: pipeline.config()})
    torch.manual_seed(seed)
    cfg = BiLMConfig(vocab_size=vocab.size, n_chars=vocab.char_size, max_chars=vocab.max_chars_per_token,
                     char_embed_dim=4, filters=((1, 4), (2, 6), (3, 6)), highway_layers=1,
                     projection_dim=projection_dim, lstm_dim=2 * projection_dim, n_layers=2, dropout=0.0,
                     softmax="full")
    return BiLM(cfg).save(tmp / "bilm", vocab_dir=vocab_dir)
