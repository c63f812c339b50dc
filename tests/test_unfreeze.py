"""Adapting and unfreezing the biLM (finetune.bilm.mode): gradual unfreezing changes only the groups
unfrozen so far, the per-group learning rates are the configured ones, the adapted biLM is reused
only while its inputs are unchanged, and adapted/unfrozen classifiers save and load exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from elmo.task.model import BiLMTaskModel, TaskConfig, TaskModel
from elmo.task.train import TaskData, fit, make_optimizer, predict_proba
from elmo.task.words import TaskWords
from elmo.text.pipeline import TextPipeline
from elmo.train.schedule import UnfreezePlan, bilm_layer_groups, slanted_triangular
from tiny_elmo import HEADLINES, make_bilm_dir


@pytest.fixture(scope="module")
def tokenizer():
    from elmo.text import Tokenizer

    return Tokenizer("mecab")


@pytest.fixture(scope="module")
def bilm_dir(tmp_path_factory, tokenizer) -> Path:
    return make_bilm_dir(tmp_path_factory.mktemp("unfreeze"), tokenizer)


@pytest.fixture(scope="module")
def dataset(tokenizer):
    labels = sorted(HEADLINES)
    texts = [(t, lab) for lab, ts in HEADLINES.items() for t in ts]
    tokens = [tokenizer.tokenize(t) for t, _ in texts]
    words = TaskWords.build(tokens)
    y = np.array([labels.index(lab) for _, lab in texts])
    return labels, words, TaskData([words.ids(t) for t in tokens], y, tokens=tokens), tokens, [t for t, _ in texts]


def tuned_model(bilm_dir: Path, words: TaskWords, seed: int = 0) -> BiLMTaskModel:
    from elmo.model import BiLM, vocab_dir
    from elmo.vocab import Vocabulary

    bilm = BiLM.load(bilm_dir)
    torch.manual_seed(seed)
    head = TaskModel(TaskConfig(n_classes=3, vocab_size=len(words), elmo_layers=bilm.config.n_layers + 1,
                                elmo_dim=2 * bilm.config.projection_dim, word_dim=8, hidden=8, dropout=0.0,
                                elmo_dropout=0.0))
    return BiLMTaskModel(head, bilm, Vocabulary.load(vocab_dir(bilm_dir)))


OPTS = dict(batch_size=6, lr=0.02, weight_decay=0.0, patience=10, grad_clip=5.0, seed=0, schedule="stlr")


def snapshot(model: BiLMTaskModel) -> list[list[torch.Tensor]]:
    return [[p.detach().clone() for p in g] for g in bilm_layer_groups(model.bilm)]


def test_gradual_unfreezing_changes_only_the_groups_unfrozen_so_far(bilm_dir, dataset) -> None:
    labels, words, data, _, _ = dataset
    model = tuned_model(bilm_dir, words)
    initial = snapshot(model)
    softmax_before = [p.detach().clone() for p in model.bilm.softmax.parameters()]
    head_before = [p.detach().clone() for p in model.head.parameters()]
    after_epoch: list[list[list[torch.Tensor]]] = []
    plan = UnfreezePlan(n_groups=len(initial), lr=0.02)
    fit(model, data, data, labels, max_epochs=4, unfreeze=plan, log=lambda s: None,
        on_epoch=lambda row: after_epoch.append(snapshot(model)), **OPTS)
    assert len(after_epoch) == 4
    for epoch, groups in enumerate(after_epoch, 1):
        for k, (b, a) in enumerate(zip(initial, groups)):  # k = 0: the top LSTM layers
            same = all(torch.equal(x, y) for x, y in zip(b, a))
            if k < epoch - 1:
                assert not same, f"group {k} (top first) should have trained by epoch {epoch}"
            else:
                assert same, f"group {k} (top first) is frozen in epochs 1..{epoch} but changed"
    assert all(torch.equal(x, p) for x, p in zip(softmax_before, model.bilm.softmax.parameters()))
    assert not all(torch.equal(x, p) for x, p in zip(head_before, model.head.parameters()))


def test_without_gradual_unfreezing_every_group_trains_from_the_first_epoch(bilm_dir, dataset) -> None:
    labels, words, data, _, _ = dataset
    model = tuned_model(bilm_dir, words)
    initial = snapshot(model)
    fit(model, data, data, labels, max_epochs=1, unfreeze=UnfreezePlan(n_groups=3, lr=0.02, gradual=False),
        log=lambda s: None, **OPTS)
    for b, a in zip(initial, snapshot(model)):
        assert not all(torch.equal(x, y) for x, y in zip(b, a))


def test_per_group_learning_rates_are_the_configured_ones(bilm_dir, dataset) -> None:
    from elmo.task.train import FitOptions

    _, words, _, _, _ = dataset
    model = tuned_model(bilm_dir, words)
    plan = UnfreezePlan(n_groups=3, lr=0.01, factor=2.6, bilm_lr_scale=0.5)
    opt, groups = make_optimizer(model, FitOptions(max_epochs=1, **{**OPTS, "lr": 0.01}), plan)
    lrs = [g["lr"] for g in opt.param_groups]
    assert lrs == pytest.approx([0.01, 0.005, 0.005 / 2.6, 0.005 / 2.6 ** 2])
    assert [g["name"] for g in opt.param_groups] == ["head", "bilm0", "bilm1", "bilm2"]
    # each group holds exactly its layer's parameters: top LSTM layers, lower LSTM layers, token encoder
    ids = [{id(p) for p in g["params"]} for g in opt.param_groups[1:]]
    assert ids[0] == {id(p) for p in [*model.bilm.forward_lm.layers[1].parameters(),
                                      *model.bilm.backward_lm.layers[1].parameters()]}
    assert ids[2] == {id(p) for p in model.bilm.token_encoder.parameters()}
    assert not any(id(p) in set().union(*ids) for p in model.bilm.softmax.parameters())


def test_slanted_triangular_schedule() -> None:
    total = 100
    m = [slanted_triangular(t, total, cut_frac=0.1, ratio=32) for t in range(total)]
    assert m[0] == pytest.approx(1 / 32) and max(m) == pytest.approx(1.0) and int(np.argmax(m)) == 10
    assert all(a <= b for a, b in zip(m[:10], m[1:11])) and all(a >= b for a, b in zip(m[10:], m[11:]))
    assert m[-1] > 1 / 32 - 1e-9


def test_unfrozen_classifier_saves_loads_and_predicts_the_same(bilm_dir, dataset, tokenizer, tmp_path) -> None:
    from elmo.task.classifier import Classifier, save_classifier

    labels, words, data, tokens, texts = dataset
    model = tuned_model(bilm_dir, words)
    fit(model, data, data, labels, max_epochs=2, unfreeze=UnfreezePlan(n_groups=3, lr=0.02, gradual=False),
        log=lambda s: None, **OPTS)
    expected = predict_proba(model, data)
    out = save_classifier(tmp_path / "clf", model=model, labels=labels, words=words,
                          pipeline=TextPipeline(tokenizer=tokenizer.config()), max_tokens=64, bilm_dir=bilm_dir,
                          layer_dtype="float32")
    clf = Classifier.load(out)
    assert not torch.equal(clf.elmo.bilm.token_encoder.proj.weight, tuned_model(bilm_dir, words).bilm
                           .token_encoder.proj.weight)  # the finetuned biLM was saved, not the pretrained one
    got = clf.predict_proba(texts)
    assert np.allclose(got, expected, atol=1e-5)
    assert (got.argmax(1) == expected.argmax(1)).all()
    # deterministic embeddings of the saved model: a sentence alone or in any batch gets the same vectors
    alone = clf.elmo.embed([tokens[0]], mix=None).layers[0]
    mixed = clf.elmo.embed([tokens[5], tokens[0], tokens[11]], mix=None).layers[1]
    assert torch.allclose(alone, mixed, atol=1e-6)
    assert np.allclose(Classifier.load(out).predict_proba(texts[::-1]), got[::-1], atol=1e-6)


def test_adapted_bilm_is_reused_until_the_biLM_or_the_texts_change(bilm_dir, dataset, tokenizer, tmp_path) -> None:
    from elmo.task.adapt import AdaptOptions, adapt_bilm

    _, _, _, tokens, _ = dataset
    opts = AdaptOptions(max_steps=6, max_minutes=0, batch_tokens=64, lr=0.01, heldout_sentences=3)
    out = tmp_path / "bilm_task"
    first = adapt_bilm(bilm_dir, tokens, out, opts, log=lambda s: None)
    assert not first.reused and first.info["steps"] == 6 and (out / "vocab").is_dir()
    assert first.info["heldout_ppl_after"] < first.info["heldout_ppl_before"]
    weights = (out / "weights.safetensors").read_bytes()
    again = adapt_bilm(bilm_dir, tokens, out, opts, log=lambda s: None)
    assert again.reused and again.key == first.key and (out / "weights.safetensors").read_bytes() == weights
    texts_changed = adapt_bilm(bilm_dir, tokens[:-1], out, opts, log=lambda s: None)
    assert not texts_changed.reused and texts_changed.key != first.key
    other = make_bilm_dir(tmp_path / "other", tokenizer, seed=1)
    bilm_changed = adapt_bilm(other, tokens[:-1], out, opts, log=lambda s: None)
    assert not bilm_changed.reused and bilm_changed.key != texts_changed.key
    assert adapt_bilm(other, tokens[:-1], out, opts, log=lambda s: None).reused
    options_changed = adapt_bilm(other, tokens[:-1], out, AdaptOptions(**{**opts.__dict__, "lr": 0.02}),
                                 log=lambda s: None)
    assert not options_changed.reused


def test_adapting_lowers_the_task_text_loss(bilm_dir, dataset, tmp_path) -> None:
    from elmo.model import BiLM, vocab_dir
    from elmo.task.adapt import AdaptOptions, adapt_bilm, perplexity
    from elmo.vocab import Vocabulary

    _, _, _, tokens, _ = dataset
    vocab = Vocabulary.load(vocab_dir(bilm_dir))
    before = perplexity(BiLM.load(bilm_dir), vocab, tokens)
    res = adapt_bilm(bilm_dir, tokens, tmp_path / "a", AdaptOptions(max_steps=30, max_minutes=0, batch_tokens=128,
                                                                    lr=0.02, heldout_sentences=0),
                     log=lambda s: None)
    after = perplexity(BiLM.load(res.path), vocab, tokens)
    assert after < 0.8 * before


def test_adapting_adds_the_task_text_s_missing_characters(bilm_dir, dataset, tmp_path) -> None:
    from elmo.model import BiLM, vocab_dir
    from elmo.task.adapt import AdaptOptions, adapt_bilm
    from elmo.vocab import Vocabulary
    from elmo.vocab.chars import UNK

    _, _, _, tokens, _ = dataset
    before = Vocabulary.load(vocab_dir(bilm_dir))
    assert before.chars.unit_ids("北") == [UNK]
    texts = tokens + [["北", "미사일", "발사"], ["北", "美", "회담"], ["美", "대선"], ["日", "총리"]]
    res = adapt_bilm(bilm_dir, texts, tmp_path / "a", AdaptOptions(max_steps=3, max_minutes=0, batch_tokens=128,
                                                                   heldout_sentences=0, extend_chars_min_count=2),
                     log=lambda s: None)
    assert res.info["chars_added"][:2] == ["北", "美"] and "日" not in res.info["chars_added"]  # 日: once only
    after = Vocabulary.load(vocab_dir(res.path))
    assert after.chars.unit_ids("北") != [UNK] and after.char_size == before.char_size + len(res.info["chars_added"])
    assert after.chars.unit_ids("국회") == before.chars.unit_ids("국회")  # existing ids unchanged
    bilm = BiLM.load(res.path)  # config, weights and vocabulary agree
    assert bilm.token_encoder.embed.weight.shape[0] == after.char_size
    kept = adapt_bilm(bilm_dir, texts, tmp_path / "b", AdaptOptions(max_steps=1, max_minutes=0, batch_tokens=128,
                                                                    heldout_sentences=0, extend_chars_min_count=0),
                      log=lambda s: None)
    assert kept.info["chars_added"] == [] and Vocabulary.load(vocab_dir(kept.path)).sha256 == before.sha256


def test_random_bilm_control_has_the_shape_and_vocabulary_but_not_the_weights(bilm_dir, tmp_path) -> None:
    from elmo.model import BiLM, vocab_dir
    from elmo.model.files import read_config
    from elmo.task.adapt import random_bilm
    from elmo.vocab import Vocabulary

    out = random_bilm(bilm_dir, tmp_path / "r", seed=7)
    assert read_config(out)["config"] == read_config(bilm_dir)["config"]
    assert Vocabulary.load(vocab_dir(out)).sha256 == Vocabulary.load(vocab_dir(bilm_dir)).sha256
    trained, control = BiLM.load(bilm_dir).state_dict(), BiLM.load(out).state_dict()
    assert not torch.equal(trained["forward_lm.layers.0.weight_ih_l0"], control["forward_lm.layers.0.weight_ih_l0"])
    torch.manual_seed(7)
    fresh = BiLM(read_config(bilm_dir)["config"]).state_dict()
    assert all(torch.equal(fresh[k], control[k]) for k in fresh)  # exactly the seeded initialisation
    assert random_bilm(bilm_dir, tmp_path / "r", seed=7) == out  # saved once, then reused


def test_heldout_slice_is_a_stable_hash_of_the_record_id() -> None:
    from elmo.task.data import Record
    from elmo.task.experiment import heldout_split

    recs = [Record(text=f"제목 {i}", label="a", line=i + 1, id=f"id-{i}") for i in range(2000)]
    mask = heldout_split(recs, 0.1, "salt")
    assert 0.08 < mask.mean() < 0.12
    shuffled = recs[::-1]
    assert (heldout_split(shuffled, 0.1, "salt")[::-1] == mask).all()  # order never moves a record
    assert not (heldout_split(recs, 0.1, "other") == mask).all()  # the salt does
    no_ids = [Record(text=r.text, label="a", line=r.line) for r in recs]
    assert heldout_split(no_ids, 0.1, "salt").any()  # without ids the text is the key
    two = heldout_split(recs[:2], 0.1, "salt")
    assert two.sum() == 1  # a tiny train split keeps one record on each side
