"""ELMo as a library: ScalarMix, Elmo over a tiny random biLM, determinism, `elmo embed`."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pytest
import torch

from elmo.embed.scalar_mix import ScalarMix
from tiny_elmo import make_bilm_dir


@pytest.fixture(scope="module")
def tokenizer():
    from elmo.text import Tokenizer

    return Tokenizer("mecab")


@pytest.fixture(scope="module")
def bilm_dir(tmp_path_factory, tokenizer) -> Path:
    return make_bilm_dir(tmp_path_factory.mktemp("elmo"), tokenizer)


@pytest.fixture(scope="module")
def elmo(bilm_dir):
    from elmo import Elmo

    return Elmo.load(bilm_dir, max_batch_tokens=40)


def test_scalar_mix_weights_sum_to_one_and_gamma_scales() -> None:
    torch.manual_seed(0)
    mix = ScalarMix(3, initial_scalars=[0.3, -1.0, 2.0])
    w = mix.weights()
    assert torch.all(w >= 0) and torch.isclose(w.sum(), torch.tensor(1.0))
    layers = torch.randn(3, 2, 5, 4)  # (L+1, B, T, D)
    expected = (w.view(3, 1, 1, 1) * layers).sum(0)
    assert torch.allclose(mix(layers), expected, atol=1e-6)
    with torch.no_grad():
        mix.gamma.fill_(2.5)
    assert torch.allclose(mix(layers), 2.5 * expected, atol=1e-6)
    # layer_dim=1 mixes (B, L+1, T, D) the same way
    assert torch.allclose(mix(layers.transpose(0, 1), layer_dim=1), 2.5 * expected, atol=1e-6)


def test_scalar_mix_is_trainable_and_gamma_can_be_fixed() -> None:
    layers = torch.randn(3, 2, 5, 4)
    mix = ScalarMix(3)
    mix(layers).pow(2).sum().backward()
    assert mix.scalars.grad is not None and mix.gamma.grad is not None
    fixed = ScalarMix(3, trainable_gamma=False)
    assert not fixed.gamma.requires_grad and float(fixed.gamma) == 1.0
    assert [n for n, p in fixed.named_parameters() if p.requires_grad] == ["scalars"]


def test_scalar_mix_layer_norm_keeps_pads_zero_and_checks_layers() -> None:
    layers = torch.randn(3, 2, 5, 4)
    layers[:, 1, 3:] = 0  # pads
    out = ScalarMix(3, layer_norm=True)(layers)
    assert torch.equal(out[1, 3:], torch.zeros(2, 4))
    with pytest.raises(ValueError, match="expected 3 layers"):
        ScalarMix(3)(torch.randn(2, 1, 4))
    with pytest.raises(ValueError):
        ScalarMix(0)


def test_elmo_layer_shapes_and_layer0_duplicated(elmo) -> None:
    out = elmo.embed([["국회", "예산안", "통과"], ["손흥민"]], mix=None)
    assert out.mixed is None
    assert [tuple(h.shape) for h in out.layers] == [(3, 3, 16), (3, 1, 16)]  # (L+1, n, 2P), P=8
    h0 = out.layers[0][0]
    assert torch.equal(h0[:, :8], h0[:, 8:])  # layer 0 = [x; x]
    assert not torch.equal(out.layers[0][1], out.layers[0][2])  # forward and backward layers differ


def test_same_sentence_same_vectors_whatever_the_batch(elmo) -> None:
    target = ["삼성전자", "새", "스마트폰", "공개"]
    alone = elmo.embed([target], mix=None).layers[0]
    others = [["야구"], ["국회", "예산안", "통과", "여야", "원내", "대표", "회동", "대통령", "시정", "연설"],
              ["골프", "선수", "우승"], target, ["카카오"] * 7]
    mixed_batch = elmo.embed(others, mix=None).layers[3]
    assert torch.allclose(alone, mixed_batch, atol=1e-5)
    again = elmo.embed([["야구"], target], mix=None).layers[1]
    assert torch.allclose(alone, again, atol=1e-5)


def test_raw_text_uses_the_pretraining_tokenizer(elmo, tokenizer) -> None:
    text = "국회 예산안 통과"
    out = elmo.embed([text])
    assert out.tokens == [tokenizer.tokenize(text)]
    assert out.mixed[0].shape == (len(out.tokens[0]), 16)
    expected = out.layers[0].mean(dim=0)  # the default mix: equal weights, γ = 1
    assert torch.allclose(out.mixed[0], expected, atol=1e-6)


def test_text_pipeline_same_vectors_for_forms_of_a_headline(elmo) -> None:
    """NFD jamo, extra spaces, a zero-width space, HTML entities: the biLM sees what pretraining saw."""
    base = '국회 "예산안" 통과 & 시정연설'
    forms = [unicodedata.normalize("NFD", base), '  국회   "예산안"\u3000통과 &  시정연설 ',
             '국회\u200b "예산안" 통과 & 시정\u200d연설', "국회 &quot;예산안&quot; 통과 &amp; 시정연설"]
    want = elmo.embed([base])
    for form in forms:  # one at a time: the same batch shape, so the same vectors bit for bit
        got = elmo.embed([form])
        assert got.tokens == want.tokens
        assert torch.equal(got.layers[0], want.layers[0]) and torch.equal(got.mixed[0], want.mixed[0])


def test_text_pipeline_old_vocabulary_loads_with_the_default_normaliser(bilm_dir, tmp_path, caplog) -> None:
    """A biLM saved before the text pipeline was (vocab/ without text_pipeline.json): the default
    normaliser with its saved tokenizer settings, and a warning naming the file."""
    import shutil

    from elmo import Elmo
    from elmo.text.pipeline import TextPipeline

    old = tmp_path / "old"
    shutil.copytree(bilm_dir, old)
    (old / "vocab/text_pipeline.json").unlink()
    with caplog.at_level("WARNING", logger="elmo"):
        elmo = Elmo.load(old)
    assert "vocab/text_pipeline.json: no saved text pipeline" in caplog.text
    assert elmo.pipeline == TextPipeline.load(bilm_dir / "vocab")  # the defaults: what the fixture saved
    with pytest.raises(FileNotFoundError, match="text_pipeline.json: no such file"):
        TextPipeline.load(old / "vocab")


def test_embed_rejects_bad_input(elmo) -> None:
    with pytest.raises(TypeError):
        elmo.embed("한 문장")
    with pytest.raises(ValueError, match="no tokens"):
        elmo.embed([[]])


def test_layer_cache_roundtrip_and_reuse(elmo, bilm_dir, tmp_path) -> None:
    from elmo.embed.cache import cached_layers

    sents = [["국회", "예산안", "통과"], ["손흥민"], ["삼성전자", "새", "스마트폰", "공개"]]
    c1 = cached_layers(elmo, sents, tmp_path, model_dir=bilm_dir, dtype="float32", progress=False)
    assert not c1.hit and len(c1) == 3 and list(c1.lengths()) == [3, 1, 4]
    direct = elmo.embed(sents, mix=None).layers
    for i in range(3):
        assert np.allclose(c1[i], direct[i].permute(1, 0, 2).numpy(), atol=1e-6)
    c2 = cached_layers(elmo, sents, tmp_path, model_dir=bilm_dir, dtype="float32", progress=False)
    assert c2.hit and c2.path == c1.path
    half = cached_layers(elmo, sents, tmp_path, model_dir=bilm_dir, dtype="float16", progress=False)
    assert half.path != c1.path and half.layers.dtype == np.float16
    other = cached_layers(elmo, sents[:2], tmp_path, model_dir=bilm_dir, dtype="float32", progress=False)
    assert other.path != c1.path  # other tokens, other key
    x, mask = c1.padded([0, 1])
    assert tuple(x.shape) == (2, 3, 3, 16) and mask.tolist() == [[True] * 3, [True, False, False]]
    assert torch.equal(x[1, :, 1:], torch.zeros(3, 2, 16))


def test_elmo_embed_command(bilm_dir, tmp_path) -> None:
    from typer.testing import CliRunner

    from elmo.cli import app

    src = tmp_path / "lines.txt"
    src.write_text("국회 예산안 통과\n\n손흥민 시즌 첫 골\n", encoding="utf-8")
    out = tmp_path / "vec.npz"
    res = CliRunner().invoke(app, ["embed", str(src), "--out", str(out), "--model", str(bilm_dir)])
    assert res.exit_code == 0, res.output
    z = np.load(out)
    assert list(z["line_numbers"]) == [1, 3]
    n = int(z["offsets"][-1])
    assert z["layers"].shape == (n, 3, 16) and len(z["tokens"]) == n
    res = CliRunner().invoke(app, ["embed", str(tmp_path / "missing.txt"), "--model", str(bilm_dir)])
    assert res.exit_code == 2 and "no such file" in res.output


def test_import_elmo_stays_light_and_exports_elmo() -> None:
    import subprocess
    import sys

    code = "import sys, elmo; assert 'torch' not in sys.modules; from elmo import Elmo; print(Elmo.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Elmo"


def test_elmo_loads_from_an_mlflow_uri(bilm_dir, tmp_path, elmo) -> None:
    import mlflow

    mlflow.set_tracking_uri("sqlite:///" + str(tmp_path / "mlflow.db"))
    exp = mlflow.create_experiment("embed-test", artifact_location=(tmp_path / "art").as_uri())
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_artifacts(str(bilm_dir), artifact_path="bilm")
    from elmo import Elmo

    remote = Elmo.load(f"runs:/{run.info.run_id}/bilm")
    sent = [["국회", "예산안", "통과"]]
    assert torch.allclose(remote.embed(sent, mix=None).layers[0], elmo.embed(sent, mix=None).layers[0])
    with pytest.raises(FileNotFoundError, match="no such biLM directory"):
        Elmo.load(tmp_path / "nowhere")
