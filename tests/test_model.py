"""The biLM's shapes, config, output layers and files (tiny fixture model, CPU, seconds)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from elmo.model import BiLM, BiLMConfig
from elmo.model.bilm import reverse_padded
from elmo.model.softmax import LogUniformSampler
from helpers.synthetic import make_batch, random_corpus, spellings

V, N_CHARS, C = 60, 24, 8


def tiny_config(**kw) -> BiLMConfig:
    base = dict(vocab_size=V, n_chars=N_CHARS, max_chars=C, char_embed_dim=4, filters=((1, 4), (2, 6), (3, 6)),
                highway_layers=1, projection_dim=8, lstm_dim=16, n_layers=2, dropout=0.1,
                softmax="sampled", n_samples=12, adaptive_cutoffs=(20, 40), adaptive_div_value=2.0)
    base.update(kw)
    return BiLMConfig(**base)


@pytest.fixture
def batch():
    table = spellings(V, N_CHARS, C, seed=1)
    return make_batch([[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]], table)


def test_output_shapes(batch) -> None:
    torch.manual_seed(0)
    cfg = tiny_config()
    model = BiLM(cfg).eval()
    B, T = batch.mask.shape
    out = model(batch.chars, batch.mask)
    assert out.token.shape == (B, T, 8)
    assert len(out.forward) == len(out.backward) == 2
    assert all(h.shape == (B, T, 8) for h in out.forward + out.backward)
    layers = model.layer_outputs(batch.chars, batch.mask)
    assert layers.shape == (3, B, T, 16)
    # layer 0 is the token vector duplicated, layers 1..L are [forward_l; backward_l]
    m = batch.mask.unsqueeze(-1)
    assert torch.equal(layers[0], torch.cat([out.token, out.token], -1) * m)
    assert torch.equal(layers[2], torch.cat([out.forward[1], out.backward[1]], -1) * m)
    assert torch.all(layers[:, ~batch.mask] == 0)  # pads are zeros
    lp_f, lp_b = model.log_probs(out)
    assert lp_f.shape == lp_b.shape == (B, T, V)
    assert torch.allclose(lp_f.exp().sum(-1), torch.ones(B, T), atol=1e-5)


def test_mask_must_be_right_padded(batch) -> None:
    model = BiLM(tiny_config())
    bad = batch.mask.clone()
    bad[0, 0] = False
    with pytest.raises(ValueError, match="right-padded"):
        model(batch.chars, bad)
    with pytest.raises(ValueError, match=r"\(B, T, C\)"):
        model(batch.chars[0], batch.mask)


def test_reverse_padded_is_a_within_length_involution() -> None:
    x = torch.arange(12.0).reshape(2, 6, 1)
    lengths = torch.tensor([4, 6])
    r = reverse_padded(x, lengths)
    assert r[0, :, 0].tolist() == [3, 2, 1, 0, 4, 5]  # pads (positions 4, 5) stay put
    assert r[1, :, 0].tolist() == [11, 10, 9, 8, 7, 6]
    assert torch.equal(reverse_padded(r, lengths), x)


def test_one_sentence_alone_equals_it_in_a_padded_batch(batch) -> None:
    torch.manual_seed(0)
    model = BiLM(tiny_config()).eval()
    full = model.layer_outputs(batch.chars, batch.mask)
    n = int(batch.mask[1].sum())
    alone = model.layer_outputs(batch.chars[1:2, :n], batch.mask[1:2, :n])
    assert torch.allclose(full[:, 1, :n], alone[:, 0], atol=1e-6)


@pytest.mark.parametrize("kw, match", [
    (dict(projection_dim=16), "projection_dim"),
    (dict(softmax="hierarchical"), "softmax"),
    (dict(filters=((9, 4),)), "filters"),
    (dict(adaptive_cutoffs=(40, 20)), "adaptive_cutoffs"),
    (dict(dropout=1.0), "dropout"),
    (dict(softmax="adaptive", adaptive_div_value=4.0), "adaptive_div_value"),
])
def test_config_rejects_bad_values(kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        tiny_config(**kw)


def test_config_round_trip_and_unknown_keys() -> None:
    cfg = tiny_config()
    d = json.loads(json.dumps(cfg.to_dict()))
    assert BiLMConfig.from_dict(d) == cfg
    with pytest.raises(ValueError, match="unknown key.*hidden"):
        BiLMConfig.from_dict({**d, "hidden": 3})
    with pytest.raises(ValueError, match="missing key.*vocab_size"):
        BiLMConfig.from_dict({k: v for k, v in d.items() if k != "vocab_size"})


def test_highway_gate_starts_at_carry() -> None:
    model = BiLM(tiny_config())
    layer = model.token_encoder.highway.layers[0]
    F = model.config.n_filters
    assert torch.all(layer.bias[F:] == 1.0) and torch.all(layer.bias[:F] == 0.0)


# ---------------------------------------------------------------------------- output layers
def test_log_uniform_sampler_matches_its_distribution() -> None:
    s = LogUniformSampler(1000)
    ids = torch.arange(1, 1000)
    assert math.isclose(float(s.log_q(ids).exp().sum()), 1.0, rel_tol=1e-4)
    torch.manual_seed(0)
    draws = s.sample(200_000)
    assert int(draws.min()) >= 1 and int(draws.max()) <= 999
    for i in (1, 2, 10):  # empirical frequency of the most frequent ids ~ q(id)
        q = float(s.log_q(torch.tensor([i])).exp())
        assert abs(float((draws == i).float().mean()) - q) < 4 * math.sqrt(q / 200_000)


@pytest.mark.parametrize("kind", ["full", "sampled", "adaptive"])
def test_exact_nll_is_the_normalised_distribution(kind) -> None:
    torch.manual_seed(0)
    model = BiLM(tiny_config(softmax=kind)).eval()
    h = torch.randn(30, 8)
    t = torch.randint(1, V, (30,))
    lp = model.softmax.log_probs(h)  # (30, V)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(30), atol=1e-5)
    assert torch.allclose(model.softmax.exact_nll(h, t), -lp.gather(1, t[:, None]).squeeze(1), atol=1e-5)
    # in training, full and adaptive train on the exact loss too
    if kind != "sampled":
        assert torch.allclose(model.softmax.train_nll(h, t), model.softmax.exact_nll(h, t), atol=1e-5)


def test_sampled_softmax_formula_and_accidental_hits() -> None:
    torch.manual_seed(0)
    model = BiLM(tiny_config(softmax="sampled", n_samples=4)).train()
    sm = model.softmax
    h = torch.randn(5, 8)
    t = torch.tensor([7, 9, 11, 7, 30])
    neg = torch.tensor([1, 7, 3, 25])
    sm.sampler.sample = lambda n, device="cpu": neg
    # by hand: logits of [target, negatives] minus log(S q(id)), negatives equal to the target dropped
    W, b = sm.weight, sm.bias
    corr = lambda ids: sm.sampler.log_q(ids) + math.log(4)  # noqa: E731
    for i in range(5):
        ids = torch.cat([t[i:i + 1], neg[neg != t[i]]])
        logits = h[i] @ W[ids].T + b[ids] - corr(ids)
        want = torch.logsumexp(logits, 0) - logits[0]
        assert torch.allclose(sm.train_nll(h[i:i + 1], t[i:i + 1]), want.unsqueeze(0), atol=1e-5)
    # every negative is the target: only the true logit is left, the loss is 0
    sm.sampler.sample = lambda n, device="cpu": torch.full((n,), 7)
    assert torch.allclose(sm.train_nll(h, torch.full((5,), 7)), torch.zeros(5))
    # in eval mode the sampled layer is the exact softmax
    sm.eval()
    assert torch.equal(sm.train_nll(h, t), sm.exact_nll(h, t))


@pytest.mark.parametrize("kind", ["full", "sampled", "adaptive"])
def test_loss_is_mean_of_directions_and_ignores_pads(kind, batch) -> None:
    torch.manual_seed(0)
    model = BiLM(tiny_config(softmax=kind)).eval()
    out = model(batch.chars, batch.mask)
    res = model.loss(out, batch.fwd_targets, batch.bwd_targets)
    n_real = int(batch.mask.sum())
    B = batch.mask.shape[0]
    assert res.n_fwd == res.n_bwd == n_real - B  # every real position but one per sentence
    lp_f, lp_b = model.log_probs(out)
    f_pos, b_pos = batch.fwd_targets != 0, batch.bwd_targets != 0
    nll_f = -lp_f.gather(2, batch.fwd_targets.unsqueeze(-1)).squeeze(-1)[f_pos].sum()
    nll_b = -lp_b.gather(2, batch.bwd_targets.unsqueeze(-1)).squeeze(-1)[b_pos].sum()
    assert torch.allclose(res.nll_fwd, nll_f, atol=1e-4) and torch.allclose(res.nll_bwd, nll_b, atol=1e-4)
    assert torch.allclose(res.loss, 0.5 * (nll_f / res.n_fwd + nll_b / res.n_bwd), atol=1e-5)


def test_gradients_reach_every_parameter(batch) -> None:
    torch.manual_seed(0)
    model = BiLM(tiny_config(softmax="full", dropout=0.0)).train()
    res = model.loss(model(batch.chars, batch.mask), batch.fwd_targets, batch.bwd_targets)
    res.loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    # the pad char's embedding row is the only thing that never learns (padding_idx)
    assert no_grad == [], no_grad


# ---------------------------------------------------------------------------- files
@pytest.mark.parametrize("kind", ["sampled", "adaptive"])
def test_save_load_gives_identical_outputs(tmp_path, batch, kind) -> None:
    torch.manual_seed(0)
    model = BiLM(tiny_config(softmax=kind)).eval()
    vocab = tmp_path / "vocab_src"
    vocab.mkdir()
    (vocab / "words.txt").write_text("<pad>\n<unk>\n", encoding="utf-8")
    model.save(tmp_path / "bilm", vocab_dir=vocab, meta={"steps": 3})
    files = sorted(p.name for p in (tmp_path / "bilm").iterdir())
    assert files == ["config.json", "vocab", "weights.safetensors"]
    assert (tmp_path / "bilm" / "vocab" / "words.txt").read_text(encoding="utf-8") == "<pad>\n<unk>\n"
    loaded = BiLM.load(tmp_path / "bilm")
    assert not loaded.training and loaded.config == model.config
    assert torch.equal(loaded.layer_outputs(batch.chars, batch.mask), model.layer_outputs(batch.chars, batch.mask))
    out_a, out_b = model(batch.chars, batch.mask), loaded(batch.chars, batch.mask)
    assert torch.equal(model.loss(out_a, batch.fwd_targets, batch.bwd_targets).loss,
                       loaded.loss(out_b, batch.fwd_targets, batch.bwd_targets).loss)
    from elmo.model import vocab_dir

    assert vocab_dir(tmp_path / "bilm") == tmp_path / "bilm" / "vocab"
    # the weights file is safetensors, not a pickle
    assert (tmp_path / "bilm" / "weights.safetensors").read_bytes()[8:9] == b"{"


def test_load_errors_name_the_file(tmp_path) -> None:
    model = BiLM(tiny_config())
    with pytest.raises(FileNotFoundError, match="config.json"):
        BiLM.load(tmp_path / "nowhere")
    model.save(tmp_path / "m")
    cfg = tmp_path / "m" / "config.json"
    doc = json.loads(cfg.read_text())
    doc["config"]["lstm_dim"] = 32
    cfg.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="weights.safetensors: weights do not match"):
        BiLM.load(tmp_path / "m")
    doc["config"]["lstm_dimension"] = doc["config"].pop("lstm_dim")
    cfg.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"config.json: field config: .*unknown key.*lstm_dimension"):
        BiLM.load(tmp_path / "m")
    cfg.write_text("{not json")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        BiLM.load(tmp_path / "m")
    (tmp_path / "m" / "weights.safetensors").write_bytes(b"garbage")
    cfg.write_text(json.dumps({**doc, "config": tiny_config().to_dict()}))
    with pytest.raises(ValueError, match="weights.safetensors: not a readable"):
        BiLM.load(tmp_path / "m")


def test_random_corpus_batch_follows_the_contract() -> None:
    table = spellings(V, N_CHARS, C)
    b = make_batch(random_corpus(4, V, seed=3), table)
    lengths = b.mask.sum(1)
    for i, n in enumerate(lengths.tolist()):
        assert b.tokens[i, 0] == 2 and b.tokens[i, n - 1] == 3
        assert torch.equal(b.fwd_targets[i, :n - 1], b.tokens[i, 1:n]) and b.fwd_targets[i, n - 1:].eq(0).all()
        assert torch.equal(b.bwd_targets[i, 1:n], b.tokens[i, :n - 1]) and b.bwd_targets[i, 0] == 0
        assert b.bwd_targets[i, n:].eq(0).all()


def test_adaptive_softmax_keeps_idle_clusters_in_the_graph() -> None:
    """DDP without an unused-parameter search needs every parameter in every step's graph."""
    torch.manual_seed(0)
    model = BiLM(tiny_config(softmax="adaptive")).train()
    h = torch.randn(6, 8, requires_grad=True)
    t = torch.tensor([4, 5, 6, 7, 8, 9])  # all in the head: both tail clusters idle
    nll = model.softmax.train_nll(h, t)
    nll.sum().backward()
    assert all(p.grad is not None for p in model.softmax.parameters())
    assert torch.allclose(nll, model.softmax.exact_nll(h, t))


def test_saved_weights_are_the_same_bytes_whatever_order_safetensors_writes_its_metadata(tmp_path) -> None:
    """safetensors' metadata order is random per process: the canonical header makes it one order."""
    import json as _json

    import numpy as np
    from safetensors.numpy import load_file, save_file

    from elmo.io import canonical_safetensors

    arrays = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.ones(3, dtype=np.float64)}
    save_file(arrays, str(tmp_path / "x.safetensors"), metadata={"format": "pt", "model": "m"})
    raw = (tmp_path / "x.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = _json.loads(raw[8:8 + n])
    variants = []
    for order in (["format", "model"], ["model", "format"]):  # both orders, as two processes may write
        h = {"__metadata__": {k: header["__metadata__"][k] for k in order},
             **{k: v for k, v in header.items() if k != "__metadata__"}}
        text = _json.dumps(h).encode()
        path = tmp_path / f"{order[0]}.safetensors"
        path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])
        canonical_safetensors(path)
        variants.append(path.read_bytes())
        loaded = load_file(str(path))
        assert set(loaded) == {"a", "b"} and all(np.array_equal(loaded[k], arrays[k]) for k in arrays)
    assert variants[0] == variants[1]
    assert int.from_bytes(variants[0][:8], "little") % 8 == 0
