"""The golden fixture (tests/fixtures/golden, made by tests/helpers/golden.py): a tiny committed biLM
and classifier must give, for a few Korean sentences, the tokens, layers, scalar mix and class
probabilities recorded when it was made, to 1e-6. It pins the normaliser, the tokenizer and the
forward pass; a change meant to move them regenerates the fixture (see the helper's docstring)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers.golden import FIXTURE, SENTENCES

ATOL = 1e-6


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((FIXTURE / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def classifier():
    from elmo.task.classifier import Classifier

    return Classifier.load(FIXTURE / "classifier")


def test_golden_fixture_is_small_and_whole(expected) -> None:
    files = [p for p in FIXTURE.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 300_000
    assert {p.name for p in files} >= {"weights.safetensors", "text_pipeline.json", "expected.json"}
    assert [s["text"] for s in expected["sentences"]] == SENTENCES


def test_golden_tokens_layers_and_mix(classifier, expected) -> None:
    from elmo.embed.elmo import Elmo

    elmo = Elmo.load(FIXTURE / "classifier" / "bilm")
    assert elmo.pipeline == classifier.pipeline  # the classifier's text pipeline is its biLM's
    for want in expected["sentences"]:
        got = elmo.embed([want["text"]])  # one at a time, as recorded
        assert got.tokens[0] == want["tokens"], want["text"]  # normaliser + tokenizer
        layers = torch.tensor(want["layers"])
        assert got.layers[0].shape == layers.shape
        assert torch.allclose(got.layers[0], layers, atol=ATOL, rtol=0), want["text"]
        assert torch.allclose(got.mixed[0], torch.tensor(want["mixed"]), atol=ATOL, rtol=0), want["text"]


def test_golden_classifier_probabilities(classifier, expected) -> None:
    assert classifier.labels == expected["labels"] and classifier.layer_dtype == "float16"
    probs = classifier.predict_proba(SENTENCES)
    np.testing.assert_allclose(probs, np.array(expected["probs"]), atol=ATOL, rtol=0)
    assert [r["label"] for r in classifier.predict(SENTENCES)] == [
        expected["labels"][int(np.argmax(p))] for p in expected["probs"]]
