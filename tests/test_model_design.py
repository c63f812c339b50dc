"""Tests that pin the biLM's design (DESIGN.md section 2) directly, each one a check that can fail.

* **Tied softmax**: both directions' distributions and loss come from one output layer — the same
  parameter objects get both directions' gradients, and the model holds one softmax's parameters,
  not two.
* **Dropout placement** (elmo/model/bilm.py, as bilm-tf): in training, dropout on the input of
  every LSTM layer of both stacks (the token vectors into layer 1, layer 1's output into layer 2)
  and on the top states fed to the softmax; the residual adds the *undropped* layer 1 output;
  evaluation is deterministic and drops nothing.
* **Residual**: layer 2's output is its LSTM's output plus layer 1's output; layer 1's output is
  its LSTM's output alone.

Each test was mutation-checked: untying the softmax, removing a dropout and dropping the residual
each make at least one of them fail.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F

from elmo.model import BiLM
from elmo.model.bilm import reverse_padded
from elmo.model.softmax import make_softmax
from helpers.synthetic import make_batch, spellings
from test_model import N_CHARS, C, V, tiny_config

STACKS = ("forward_lm", "backward_lm")
P_DROP = 0.5  # large, so that a missing dropout cannot hide among a few zeros


@pytest.fixture
def batch():
    table = spellings(V, N_CHARS, C, seed=1)
    return make_batch([[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]], table)


@contextmanager
def capture(model: BiLM):
    """Record each stack's input and outputs and each LSTM's input and output during a forward pass.

    Keys: (stack, "in") the stack's input (B, T, P) (the backward stack's is the reversed sentence),
    (stack, "out") its list of layer outputs, (stack, i, "lstm_in") / (stack, i, "lstm_out") what
    the i-th ``nn.LSTM`` itself received and returned.
    """
    seen: dict[tuple, object] = {}
    handles = []

    def put(key, value):
        seen[key] = value

    for name in STACKS:
        stack = getattr(model, name)
        handles.append(stack.register_forward_pre_hook(lambda m, args, k=(name, "in"): put(k, args[0])))
        handles.append(stack.register_forward_hook(lambda m, args, out, k=(name, "out"): put(k, out)))
        for i, lstm in enumerate(stack.layers):
            handles.append(lstm.register_forward_pre_hook(lambda m, args, k=(name, i, "lstm_in"): put(k, args[0])))
            handles.append(lstm.register_forward_hook(lambda m, args, out, k=(name, i, "lstm_out"): put(k, out[0])))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def assert_dropped(inp: torch.Tensor, ref: torch.Tensor, p: float) -> None:
    """``inp`` is inverted dropout of ``ref``: each element 0 or ref / (1 - p), about a share p dropped."""
    assert inp.shape == ref.shape
    real = ref != 0  # the pads' zeros say nothing either way
    assert int(real.sum()) >= 64
    kept = inp[real] != 0
    share_dropped = 1.0 - kept.float().mean().item()
    assert 0.25 < share_dropped < 0.75, f"{share_dropped:.2f} of the elements dropped, expected about {p}"
    assert torch.allclose(inp[real][kept], ref[real][kept] / (1 - p), atol=1e-6)
    assert torch.all(inp[~real] == 0)


# ---------------------------------------------------------------------------- tied softmax
@pytest.mark.parametrize("kind", ["full", "sampled", "adaptive"])
def test_the_model_holds_one_softmax_worth_of_parameters(kind) -> None:
    cfg = tiny_config(softmax=kind)
    model = BiLM(cfg)
    one = sum(p.numel() for p in make_softmax(cfg).parameters())
    rest = sum(p.numel() for m in (model.token_encoder, model.forward_lm, model.backward_lm) for p in m.parameters())
    assert sum(p.numel() for p in model.softmax.parameters()) == one
    assert model.num_parameters() == rest + one  # not rest + 2 * one: no second output layer anywhere
    assert [n for n, p in model.named_parameters() if not n.startswith("softmax.") and V in p.shape] == []


@pytest.mark.parametrize("kind", ["full", "sampled", "adaptive"])
def test_both_directions_predict_through_the_same_softmax(kind, batch) -> None:
    torch.manual_seed(0)
    model = BiLM(tiny_config(softmax=kind)).eval()
    with torch.no_grad():
        out = model(batch.chars, batch.mask)
        lp_f, lp_b = model.log_probs(out)
        B, T, P = out.forward[-1].shape
        for lp, top in ((lp_f, out.forward[-1]), (lp_b, out.backward[-1])):
            assert torch.allclose(lp, model.softmax.log_probs(top.reshape(B * T, P)).reshape(B, T, V), atol=1e-6)
        if kind != "adaptive":  # the very parameter tensors, by hand
            W, b = model.softmax.weight, model.softmax.bias
            assert torch.allclose(lp_b, F.log_softmax(F.linear(out.backward[-1], W, b), -1), atol=1e-5)
            assert torch.allclose(lp_f, F.log_softmax(F.linear(out.forward[-1], W, b), -1), atol=1e-5)
        # the loss too: the backward NLL is the shared softmax's on the backward top states
        res = model.loss(out, batch.fwd_targets, batch.bwd_targets)
        b_pos = batch.bwd_targets != 0
        nll_b = model.softmax.exact_nll(out.backward[-1][b_pos], batch.bwd_targets[b_pos]).sum()
        assert torch.allclose(res.nll_bwd, nll_b, atol=1e-4)
    # perturbing the one output layer moves both directions
    with torch.no_grad():
        for p in model.softmax.parameters():
            p.add_(torch.randn_like(p))
        lp_f2, lp_b2 = model.log_probs(model(batch.chars, batch.mask))
    assert not torch.allclose(lp_f, lp_f2, atol=1e-3) and not torch.allclose(lp_b, lp_b2, atol=1e-3)


@pytest.mark.parametrize("kind", ["full", "sampled", "adaptive"])
def test_both_directions_gradients_land_in_the_same_softmax_weights(kind, batch) -> None:
    torch.manual_seed(0)
    model = BiLM(tiny_config(softmax=kind, dropout=0.0)).train()
    none = torch.zeros_like(batch.fwd_targets)  # target id 0 (<pad>) is ignored: one direction's loss only
    grads = {}
    for direction, f_t, b_t in (("forward", batch.fwd_targets, none), ("backward", none, batch.bwd_targets)):
        model.zero_grad(set_to_none=True)
        model.loss(model(batch.chars, batch.mask), f_t, b_t).loss.backward()
        grads[direction] = {n for n, p in model.named_parameters() if p.grad is not None and torch.any(p.grad != 0)}
    out_weight = "softmax.asm.head.weight" if kind == "adaptive" else "softmax.weight"
    assert out_weight in grads["forward"] and out_weight in grads["backward"]
    softmax_f = {n for n in grads["forward"] if n.startswith("softmax.")}
    softmax_b = {n for n in grads["backward"] if n.startswith("softmax.")}
    assert softmax_f == softmax_b != set()
    # and nothing else is shared: each direction's loss reaches its own stack only
    assert not any(n.startswith("backward_lm.") for n in grads["forward"])
    assert not any(n.startswith("forward_lm.") for n in grads["backward"])
    assert any(n.startswith("forward_lm.") for n in grads["forward"])
    assert any(n.startswith("backward_lm.") for n in grads["backward"])


# ---------------------------------------------------------------------------- dropout placement
def test_training_drops_out_every_lstm_input_but_not_the_residual(batch) -> None:
    torch.manual_seed(0)
    model = BiLM(tiny_config(dropout=P_DROP)).train()
    with capture(model) as seen:
        out = model(batch.chars, batch.mask)
    lengths = batch.mask.sum(1)
    assert torch.equal(seen["forward_lm", "in"], out.token)
    assert torch.equal(seen["backward_lm", "in"], reverse_padded(out.token, lengths))
    for name in STACKS:
        x, outs = seen[name, "in"], seen[name, "out"]
        assert_dropped(seen[name, 0, "lstm_in"], x, P_DROP)  # the token vectors into layer 1
        assert_dropped(seen[name, 1, "lstm_in"], outs[0], P_DROP)  # between layers
        # the layers' outputs themselves are not dropped: the residual adds layer 1 as it is
        assert torch.allclose(outs[1], seen[name, 1, "lstm_out"] + outs[0], atol=1e-6)
        assert torch.equal(outs[0], seen[name, 0, "lstm_out"])
    assert torch.equal(out.forward[0], seen["forward_lm", "out"][0])


def test_evaluation_drops_nothing_and_is_deterministic(batch) -> None:
    torch.manual_seed(0)
    model = BiLM(tiny_config(dropout=P_DROP)).eval()
    with capture(model) as seen, torch.no_grad():
        a = model.layer_outputs(batch.chars, batch.mask)
    for name in STACKS:
        assert torch.equal(seen[name, 0, "lstm_in"], seen[name, "in"])
        assert torch.equal(seen[name, 1, "lstm_in"], seen[name, "out"][0])
    torch.manual_seed(123)  # another RNG state changes nothing
    with torch.no_grad():
        assert torch.equal(model.layer_outputs(batch.chars, batch.mask), a)
        # whereas training mode does draw masks: two draws differ, and differ from evaluation
        model.train()
        t1, t2 = (model.layer_outputs(batch.chars, batch.mask) for _ in range(2))
    assert not torch.allclose(t1[1:], a[1:], atol=1e-4) and not torch.allclose(t1[1:], t2[1:], atol=1e-4)
    assert torch.equal(t1[0], a[0])  # the token vectors (layer 0) are never dropped
    # with p = 0 training and evaluation agree
    torch.manual_seed(0)
    plain = BiLM(tiny_config(dropout=0.0))
    with torch.no_grad():
        assert torch.allclose(plain.train().layer_outputs(batch.chars, batch.mask),
                              plain.eval().layer_outputs(batch.chars, batch.mask), atol=1e-6)


def test_the_softmax_input_is_dropped_in_training_only(batch, monkeypatch) -> None:
    torch.manual_seed(0)
    model = BiLM(tiny_config(softmax="full", dropout=P_DROP))
    fed = []
    for method in ("train_nll", "exact_nll"):
        real = getattr(model.softmax, method)
        monkeypatch.setattr(model.softmax, method, lambda h, t, real=real: fed.append(h) or real(h, t))
    f_pos, b_pos = batch.fwd_targets != 0, batch.bwd_targets != 0
    for training in (True, False):
        model.train(training)
        fed.clear()
        out = model(batch.chars, batch.mask)
        model.loss(out, batch.fwd_targets, batch.bwd_targets)
        tops = torch.cat([out.forward[-1][f_pos], out.backward[-1][b_pos]]).detach()
        assert len(fed) == 1
        if training:
            assert_dropped(fed[0].detach(), tops, P_DROP)
        else:
            assert torch.equal(fed[0], tops)


# ---------------------------------------------------------------------------- residual
@pytest.mark.parametrize("bwd", [False, True], ids=["forward", "backward"])
def test_layer_2_is_its_lstm_plus_layer_1_by_hand(batch, bwd) -> None:
    torch.manual_seed(0)
    model = BiLM(tiny_config(dropout=P_DROP)).eval()
    lengths = batch.mask.sum(1)
    with torch.no_grad():
        out = model(batch.chars, batch.mask)
        if bwd:
            stack, x = model.backward_lm, reverse_padded(out.token, lengths)
            layers = [reverse_padded(h, lengths) for h in out.backward]  # back into the stack's own order
        else:
            stack, x, layers = model.forward_lm, out.token, out.forward
        y1, _ = stack.layers[0](x)
        y2, _ = stack.layers[1](y1)
    assert torch.allclose(layers[0], y1, atol=1e-6)  # no residual into layer 1
    assert torch.allclose(layers[1], y2 + y1, atol=1e-6)
    assert not torch.allclose(layers[1], y2, atol=1e-2)  # the residual is not negligible here


def test_residual_holds_in_training_with_hooks(batch) -> None:
    torch.manual_seed(0)
    model = BiLM(tiny_config(dropout=P_DROP)).train()
    with capture(model) as seen:
        out = model(batch.chars, batch.mask)
    lengths = batch.mask.sum(1)
    backward = [reverse_padded(h, lengths) for h in out.backward]  # in the backward stack's own order
    for name, layers in (("forward_lm", out.forward), ("backward_lm", backward)):
        lstm1, lstm2 = seen[name, 0, "lstm_out"], seen[name, 1, "lstm_out"]
        assert torch.allclose(layers[0], lstm1, atol=1e-6)
        assert torch.allclose(layers[1], lstm2 + layers[0], atol=1e-6)
        assert not torch.allclose(layers[1], lstm2, atol=1e-2)
