"""One perplexity function and one exact evaluation loop (elmo/model/perplexity.py) for pretrain's
validation, its final and drift perplexities and adapt's held-out perplexity. The replaced bodies are
kept here as references: the numbers must be exactly (bit for bit) what they gave."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from elmo.data.batch import encode_batch
from elmo.model.perplexity import exact_losses, perplexities, perplexity
from elmo.train.evaluate import evaluate


def test_perplexity_is_exp_of_the_mean_nll() -> None:
    assert perplexity(0.0, 10) == 1.0
    assert perplexity(20.0, 10) == pytest.approx(math.exp(2.0))
    assert perplexity(2.0) == math.exp(2.0)  # a mean loss
    assert perplexity(3.0, 0) == math.exp(3.0)  # no targets: counted as one
    m = perplexities(20.0, 10, 40.0, 10)
    assert m["ppl"] == pytest.approx(math.exp(3.0)) and m["ppl_fwd"] == pytest.approx(math.exp(2.0))
    assert m["loss"] == pytest.approx(3.0) and m["tokens"] == 10


def _old_perplexities(nll_fwd, n_fwd, nll_bwd, n_bwd):  # elmo/train/module.py before
    lf, lb = nll_fwd / max(n_fwd, 1), nll_bwd / max(n_bwd, 1)
    loss = 0.5 * (lf + lb)
    return {"loss": loss, "ppl_fwd": math.exp(lf), "ppl_bwd": math.exp(lb), "ppl": math.exp(loss), "tokens": n_fwd}


def _old_drift_row(loss_fwd, loss_bwd, tokens, oov, sentences):  # elmo/train/drift.py before
    return {"ppl": round(math.exp(0.5 * (loss_fwd + loss_bwd)), 4), "ppl_fwd": round(math.exp(loss_fwd), 4),
            "ppl_bwd": round(math.exp(loss_bwd), 4), "oov_rate": round(oov / tokens, 6) if tokens else None,
            "tokens": tokens, "sentences": sentences}


def test_the_formulas_give_the_old_numbers_exactly() -> None:
    from elmo.train.drift import _row

    rng = random.Random(0)
    for _ in range(2000):
        n_f, n_b = rng.randint(0, 10**6), rng.randint(0, 10**6)
        sums = (rng.uniform(0, 12) * max(n_f, 1), n_f, rng.uniform(0, 12) * max(n_b, 1), n_b)
        assert perplexities(*sums) == _old_perplexities(*sums)
        lf, lb, tokens = rng.uniform(0, 12), rng.uniform(0, 12), rng.randint(0, 1000)
        assert _row(lf, lb, tokens, tokens // 7, 3) == _old_drift_row(lf, lb, tokens, tokens // 7, 3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from elmo.model import BiLM, vocab_dir
    from elmo.text import Tokenizer
    from elmo.vocab import Vocabulary
    from tiny_elmo import corpus_tokens, make_bilm_dir

    tokenizer = Tokenizer("mecab")
    bilm_dir = make_bilm_dir(tmp_path_factory.mktemp("ppl"), tokenizer)
    return BiLM.load(bilm_dir), Vocabulary.load(vocab_dir(bilm_dir)), corpus_tokens(tokenizer)


def test_adapt_perplexity_is_the_old_number(tiny) -> None:
    from elmo.task.adapt import _batches, perplexity as adapt_perplexity

    bilm, vocab, tokens = tiny

    @torch.no_grad()
    def old(bilm, vocab, token_lists, batch_tokens=4096):  # elmo/task/adapt.py before
        was_training = bilm.training
        bilm.eval()
        nll, n = 0.0, 0
        lengths = np.array([len(t) for t in token_lists])
        for idx in _batches(lengths, batch_tokens, np.random.default_rng(0)):
            b = encode_batch(vocab, [token_lists[i] for i in idx])
            loss = bilm.loss(bilm(b.chars, b.mask), b.fwd_targets, b.bwd_targets, exact=True)
            nll += float(loss.nll_fwd + loss.nll_bwd)
            n += loss.n_fwd + loss.n_bwd
        bilm.train(was_training)
        return math.exp(nll / max(n, 1))

    bilm.train()
    for batch_tokens in (4096, 40, 17):
        assert adapt_perplexity(bilm, vocab, tokens, batch_tokens) == old(bilm, vocab, tokens, batch_tokens)
    assert bilm.training  # restored


def test_evaluate_is_the_old_loop(tiny) -> None:
    bilm, vocab, tokens = tiny
    batches = [encode_batch(vocab, tokens[i:i + 5]) for i in range(0, len(tokens), 5)]

    @torch.no_grad()
    def old(model, batches):  # elmo/train/evaluate.py before (cpu, no bf16)
        model.eval()
        sums = [0.0, 0, 0.0, 0]
        for batch in batches:
            res = model.loss(model(batch.chars, batch.mask), batch.fwd_targets, batch.bwd_targets, exact=True)
            sums[0] += float(res.nll_fwd)
            sums[1] += res.n_fwd
            sums[2] += float(res.nll_bwd)
            sums[3] += res.n_bwd
        return _old_perplexities(*sums)

    assert evaluate(bilm, batches, progress=False) == old(bilm, batches)
    assert len(list(exact_losses(bilm, batches, progress=False))) == len(batches)
    assert torch.is_grad_enabled()  # the loop's no_grad does not leak out
