"""No information flows from a target into the states that predict it (the issue's "no leakage").

Changing token j (its characters) must leave, bit for bit, every forward state and prediction at
positions < j and every backward state and prediction at positions > j; other sentences of the
batch must not move at all. The same check flags a stacked ``bidirectional=True`` LSTM — the
well-known leaky ELMo — so it is a check that can fail.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from elmo.model import BiLM, BiLMOutput
from helpers.synthetic import make_batch, spellings
from test_model import N_CHARS, C, V, tiny_config


class LeakyBiLM(BiLM):
    """The student mistake: one 2-layer bidirectional LSTM; its layer 2 sees layer 1 of the other way."""

    def __init__(self, config) -> None:
        super().__init__(config)
        P, H = config.projection_dim, config.lstm_dim
        self.bi = nn.LSTM(P, H, num_layers=2, bidirectional=True, proj_size=P, batch_first=True)

    def forward(self, chars, mask) -> BiLMOutput:
        x = self.token_encoder(chars, mask)
        y, _ = self.bi(x)  # (B, T, 2P): no packing, use unpadded batches
        P = self.config.projection_dim
        f, b = y[..., :P], y[..., P:]
        return BiLMOutput(token=x, forward=[f, f], backward=[b, b], mask=mask)


def _run(model: BiLM, chars: torch.Tensor, mask: torch.Tensor, seed: int = 0):
    torch.manual_seed(seed)  # identical dropout masks in training mode
    out = model(chars, mask)
    lp_f, lp_b = model.log_probs(out)
    return out, lp_f, lp_b


def leaks(model: BiLM, chars: torch.Tensor, mask: torch.Tensor, b: int, j: int) -> list[str]:
    """Replace token j of sentence b by another spelling; list what moved that must not have."""
    new = chars.clone()
    n_body = int((chars[b, j] != 0).sum())
    new[b, j, 1:n_body - 1] = (chars[b, j, 1:n_body - 1] - 5 + 7) % (N_CHARS - 5) + 5  # other letters
    assert not torch.equal(new, chars)
    out_a, f_a, b_a = _run(model, chars, mask)
    out_b, f_b, b_b = _run(model, new, mask)
    n = int(mask[b].sum())
    moved = []
    # the perturbation is real: the token vector and both directions' states at j change
    assert not torch.equal(out_a.token[b, j], out_b.token[b, j])
    for layer, (ha, hb) in enumerate(zip(out_a.forward, out_b.forward), start=1):
        if not torch.equal(ha[b, :j], hb[b, :j]):
            moved.append(f"forward layer {layer} before {j}")
    for layer, (ha, hb) in enumerate(zip(out_a.backward, out_b.backward), start=1):
        if not torch.equal(ha[b, j + 1:n], hb[b, j + 1:n]):
            moved.append(f"backward layer {layer} after {j}")
    if not torch.equal(f_a[b, :j], f_b[b, :j]):
        moved.append(f"forward predictions before {j}")
    if not torch.equal(b_a[b, j + 1:n], b_b[b, j + 1:n]):
        moved.append(f"backward predictions after {j}")
    others = [i for i in range(chars.shape[0]) if i != b]
    if others and not all(torch.equal(x[others], y[others]) for x, y in
                          zip(out_a.forward + out_a.backward, out_b.forward + out_b.backward)):
        moved.append("another sentence of the batch")
    return moved


@pytest.fixture(scope="module")
def batch():
    table = spellings(V, N_CHARS, C, seed=2)
    return make_batch([[5, 6, 7, 8, 9, 10, 11], [12, 13, 14], [15, 16, 17, 18, 19]], table)


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("b", [0, 1])
def test_no_information_flows_from_a_target_to_its_predictors(batch, mode, b) -> None:
    torch.manual_seed(0)
    model = BiLM(tiny_config(dropout=0.2))
    model.train(mode == "train")
    n = int(batch.mask[b].sum())
    with torch.no_grad():
        for j in range(n):  # every position, the <bos>/<eos> markers included
            assert leaks(model, batch.chars, batch.mask, b, j) == [], f"position {j}"


def test_directions_also_see_what_they_may(batch) -> None:
    """The converse: forward states after j and backward states before j do depend on token j."""
    torch.manual_seed(0)
    model = BiLM(tiny_config()).eval()
    j = 3
    new = batch.chars.clone()
    new[0, j, 1] = (new[0, j, 1] + 1 - 5) % (N_CHARS - 5) + 5
    with torch.no_grad():
        a, b = model(batch.chars, batch.mask), model(new, batch.mask)
    assert not torch.equal(a.forward[1][0, j:], b.forward[1][0, j:])
    assert not torch.equal(a.backward[1][0, :j + 1], b.backward[1][0, :j + 1])


def test_pad_characters_never_matter(batch) -> None:
    torch.manual_seed(0)
    model = BiLM(tiny_config()).eval()
    noisy = batch.chars.clone()
    noisy[~batch.mask] = torch.randint(1, N_CHARS, noisy[~batch.mask].shape)
    with torch.no_grad():
        assert torch.equal(model.layer_outputs(batch.chars, batch.mask), model.layer_outputs(noisy, batch.mask))


def test_the_check_catches_a_bidirectional_lstm(batch) -> None:
    torch.manual_seed(0)
    model = LeakyBiLM(tiny_config()).eval()
    chars, mask = batch.chars[:1], batch.mask[:1]  # sentence 0 is the longest: no padding
    with torch.no_grad():
        found = leaks(model, chars, mask, 0, 4)
    # layer 2 forward sees the backward layer 1, which has read token 4
    assert "forward layer 2 before 4" in found and "forward predictions before 4" in found
    assert "backward layer 2 after 4" in found
