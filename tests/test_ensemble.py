"""The ensemble main model (ELMo classifier x TF-IDF): temperature scaling, weight selection on
held-out, the pickle-free TF-IDF model, and an ensemble classifier that saves and loads exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from elmo.task.ensemble import Ensemble, fit_temperature, select_ensemble
from elmo.text.pipeline import TextPipeline
from tiny_elmo import HEADLINES, make_bilm_dir


class TfidfP:
    analyzer, ngram_min, ngram_max, min_df, max_features, sublinear_tf, C, max_iter, tol = \
        "char_wb", 1, 3, 1, None, True, 3.0, 200, 1e-3


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_temperature_scaling_recovers_an_overconfident_model_s_temperature() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20_000, 5)) * 2
    y = np.array([rng.choice(5, p=p) for p in softmax(z)])  # labels drawn from softmax(z)
    assert fit_temperature(softmax(2.5 * z), y) == pytest.approx(2.5, rel=0.05)  # overconfident by 2.5
    assert fit_temperature(softmax(z), y) == pytest.approx(1.0, rel=0.05)


def test_combine_is_a_normalised_product_of_the_calibrated_experts() -> None:
    rng = np.random.default_rng(1)
    a, b = softmax(rng.normal(size=(50, 4))), softmax(rng.normal(size=(50, 4)))
    assert np.allclose(Ensemble(1.0, 1.0, 1.0).combine(a, b), a)
    assert np.allclose(Ensemble(0.0, 1.0, 1.0).combine(a, b), b)
    got = Ensemble(0.3, 2.0, 0.5).combine(a, b)
    expected = a ** (0.3 / 2.0) * b ** (0.7 / 0.5)
    assert np.allclose(got, expected / expected.sum(1, keepdims=True)) and np.allclose(got.sum(1), 1)


def test_the_weight_is_the_best_one_on_held_out() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, size=300)
    good = softmax(np.eye(3)[y] * 2 + rng.normal(size=(300, 3)) * 1.5)  # informative
    weak = softmax(np.eye(3)[y] * 0.7 + rng.normal(size=(300, 3)) * 1.5)  # less so, independent errors
    ens, scores = select_ensemble(good, weak, y, ["a", "b", "c"], [0.0, 0.25, 0.5, 0.75, 1.0])
    assert [s["weight"] for s in scores] == [0.0, 0.25, 0.5, 0.75, 1.0]
    f1 = [s["heldout_macro_f1"] for s in scores]
    assert ens.weight == scores[int(np.argmax(f1))]["weight"]  # the first of the best
    assert max(f1) > f1[0] and ens.weight > 0  # the informative expert is given weight
    assert ens.t_elmo == fit_temperature(good, y) and ens.t_tfidf == fit_temperature(weak, y)


def test_tfidf_model_saves_and_loads_without_pickle(tmp_path) -> None:
    from elmo.task.baseline import TfidfModel

    labels = sorted(HEADLINES)
    texts = [t for ts in HEADLINES.values() for t in ts]
    y = [lab for lab, ts in HEADLINES.items() for _ in ts]
    model = TfidfModel.fit(texts, y, labels, TfidfP)
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tfidf.json", "tfidf.safetensors"]
    loaded = TfidfModel.load(tmp_path)
    probe = texts + ["처음 보는 헤드라인", "국회 스마트폰 골"]
    assert np.array_equal(loaded.predict_proba(probe), model.predict_proba(probe))
    doc = json.loads((tmp_path / "tfidf.json").read_text())
    doc["format"] = "other"
    (tmp_path / "tfidf.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="tfidf.json: field format"):
        TfidfModel.load(tmp_path)


def test_ensemble_classifier_saves_loads_and_predicts_the_combination(tmp_path) -> None:
    from elmo.embed.cache import cached_layers
    from elmo.embed.elmo import Elmo
    from elmo.task.baseline import TfidfModel
    from elmo.task.classifier import Classifier, save_classifier
    from elmo.task.model import TaskConfig, TaskModel
    from elmo.task.train import TaskData, fit, predict_proba
    from elmo.task.words import TaskWords
    from elmo.text import Tokenizer

    tokenizer = Tokenizer("mecab")
    bilm_dir = make_bilm_dir(tmp_path / "b", tokenizer)
    elmo = Elmo.load(bilm_dir)
    labels = sorted(HEADLINES)
    texts = [t for ts in HEADLINES.values() for t in ts]
    y_names = [lab for lab, ts in HEADLINES.items() for _ in ts]
    tokens = elmo.tokenize(texts)
    words = TaskWords.build(tokens)
    data = TaskData([words.ids(t) for t in tokens], np.array([labels.index(v) for v in y_names]),
                    cached_layers(elmo, tokens, tmp_path / "cache", model_dir=bilm_dir, dtype="float32",
                                  progress=False))
    torch.manual_seed(0)
    model = TaskModel(TaskConfig(n_classes=3, vocab_size=len(words), elmo_layers=elmo.n_layers, elmo_dim=elmo.dim,
                                 word_dim=8, hidden=8))
    fit(model, data, data, labels, batch_size=6, lr=0.02, weight_decay=0.0, max_epochs=3, patience=3,
        grad_clip=5.0, seed=0, log=lambda s: None)
    tfidf = TfidfModel.fit(texts, y_names, labels, TfidfP)
    ens = Ensemble(0.4, 1.7, 0.6)
    out = save_classifier(tmp_path / "clf", model=model, labels=labels, words=words,
                          pipeline=TextPipeline(tokenizer=tokenizer.config()), max_tokens=64, bilm_dir=bilm_dir,
                          layer_dtype="float32", tfidf=tfidf, ensemble=ens.to_dict())
    expected = ens.combine(predict_proba(model, data), tfidf.predict_proba(texts))
    clf = Classifier.load(out)
    assert clf.ensemble == ens
    assert np.allclose(clf.predict_proba(texts), expected, atol=1e-5)
    res = clf.predict(texts[:2])
    assert res[0]["label"] == labels[int(expected[0].argmax())] and abs(sum(res[0]["probs"].values()) - 1) < 1e-5
    with pytest.raises(ValueError, match="needs both"):
        save_classifier(tmp_path / "bad", model=model, labels=labels, words=words, pipeline=TextPipeline(),
                        max_tokens=64, bilm_dir=bilm_dir, layer_dtype="float32", tfidf=tfidf)
