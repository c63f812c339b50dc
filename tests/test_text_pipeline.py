"""The text pipeline (elmo/text/pipeline.py): its settings file, its errors, and one normalisation
for every reader (the model-level checks — same label, same vectors — are in test_finetune.py and
test_embed.py)."""

from __future__ import annotations

import json
import unicodedata

import pytest

from elmo.errors import StageError
from elmo.params import parse_params
from elmo.text.pipeline import TextPipeline


def test_text_pipeline_saves_and_loads_its_settings(tmp_path) -> None:
    p = parse_params({"clean": {"mask_placeholder": "<m>"}, "tokenize": {"pos_tags": True}})
    pipeline = TextPipeline.from_params(p.clean, p.tokenize)
    path = pipeline.save(tmp_path)
    assert path.name == "text_pipeline.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["normalizer"]["mask_placeholder"] == "<m>" and doc["tokenizer"]["pos_tags"] is True
    again = TextPipeline.load(tmp_path)
    assert again == pipeline and again != TextPipeline()
    assert again.normalize(["a ○○○ b"]) == ["a <m> b"]


def test_text_pipeline_bad_file_names_it(tmp_path) -> None:
    doc = TextPipeline().config()
    for broken, match in [({**doc, "format": "other"}, "not a text pipeline"),
                          ({**doc, "tokenizer": {"tagger": "mecab"}}, "lacks pos_tags"),
                          ({**doc, "normalizer": {**doc["normalizer"], "mask_pattern": "(x"}}, "mask_pattern")]:
        (tmp_path / "text_pipeline.json").write_text(json.dumps(broken), encoding="utf-8")
        with pytest.raises(StageError, match=rf"{tmp_path / 'text_pipeline.json'}: .*{match}"):
            TextPipeline.load(tmp_path)
    (tmp_path / "text_pipeline.json").write_text("{", encoding="utf-8")
    with pytest.raises(StageError, match="not valid JSON"):
        TextPipeline.load(tmp_path)


def test_text_pipeline_normalises_and_counts_what_it_changed() -> None:
    texts = [unicodedata.normalize("NFD", "한국어"), "a &amp; b", "x\u200by", "  spaced\t out ", "○○ 씨", ""]
    out, counts = TextPipeline().normalize_counted(texts)
    assert out == ["한국어", "a & b", "xy", "spaced out", "*** 씨", ""]
    assert counts == {"html_entities": 1, "nfc_changed": 1, "zero_width_removed": 1, "control_chars": 0,
                      "moderator_notices_removed": 0, "masked_spans": 1}
    assert TextPipeline().normalize_counted(texts)[1] == counts  # each call counts afresh


def test_text_pipeline_tokenizes_every_form_of_a_headline_alike() -> None:
    pipeline = TextPipeline()
    base = '국회 "예산안" 통과'
    forms = [base, unicodedata.normalize("NFD", base), '국회\u200b  "예산안"\u00a0통과 ',
             "국회 &quot;예산안&quot; 통과"]
    tokens = pipeline.tokenize(forms)
    assert tokens[0] == ["국회", '"', "예산안", '"', "통과"] and all(t == tokens[0] for t in tokens)
