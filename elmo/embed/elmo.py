"""``Elmo``: a frozen biLM as a feature extractor (Peters et al. 2018, §3).

    elmo = Elmo.load("models/bilm")            # a saved biLM directory, or a registry URI
    out = elmo.embed(["청와대 국민청원 게시판"])   # raw texts (tokenized as in pretraining) or token lists
    out.layers[0]   # (L+1, n, 2P) float32: layer 0 = [x; x], layers 1..L = [forward_l; backward_l]
    out.mixed[0]    # (n, 2P) with a ScalarMix (default: equal weights, γ = 1)

Each sentence is run as [<bos>, w1..wn, <eos>] (as the biLM was trained) and the <bos>/<eos>
positions are dropped from the output, so n is the number of tokens. Sentences are batched by
length (at most ``max_batch_tokens`` padded tokens per batch); the biLM runs in eval mode under
``torch.no_grad`` with right padding, so a sentence gets the same vectors whatever else is in its
batch (tests/test_embed.py checks it).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from elmo.contracts import TEXT_PIPELINE_FILE
from elmo.data.batch import encode_batch
from elmo.data.sampler import length_batches
from elmo.embed.scalar_mix import ScalarMix
from elmo.io import atomic_path
from elmo.model import BiLM, vocab_dir
from elmo.text.pipeline import TextPipeline
from elmo.tracking import download_artifacts
from elmo.vocab import Vocabulary


@dataclass
class EmbedOutput:
    tokens: list[list[str]]
    layers: list[torch.Tensor]  # per sentence (L+1, n_i, 2P)
    mixed: list[torch.Tensor] | None  # per sentence (n_i, 2P), when a mix was asked for


def resolve_model_dir(path_or_uri: str | Path) -> Path:
    """A local biLM directory for a path, or for an MLflow registry URI (``models:/elmo-bilm@champion``)."""
    text = str(path_or_uri)
    if text.startswith(("models:/", "runs:/")):
        local = download_artifacts(text)
        found = sorted(p.parent for p in local.rglob("config.json") if (p.parent / "weights.safetensors").is_file())
        if not found:
            raise FileNotFoundError(f"{text}: no saved biLM (config.json + weights.safetensors) "
                                    "in the model's artifacts")
        return found[0]
    path = Path(text)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such biLM directory (`elmo pretrain` writes models/bilm)")
    return path


class Elmo:
    """A frozen biLM plus the vocabulary (and tokenizer) it was trained with."""

    def __init__(self, bilm, vocab, pipeline=None, *, max_batch_tokens: int = 4096) -> None:
        self.bilm = bilm.eval()
        for p in self.bilm.parameters():
            p.requires_grad_(False)
        self.vocab = vocab
        self.pipeline = pipeline  # elmo.text.pipeline.TextPipeline: raw text -> tokens
        self.max_batch_tokens = int(max_batch_tokens)
        cfg = bilm.config
        self.n_layers = cfg.n_layers + 1  # L+1 representations per token
        self.dim = 2 * cfg.projection_dim  # 2P

    @classmethod
    def load(cls, path_or_uri: str | Path, pipeline=None, **kwargs) -> Elmo:
        """From a saved biLM directory (config.json, weights.safetensors, vocab/) or a registry URI.

        Raw texts go through the text pipeline the pretraining corpus was made with (saved in the
        vocabulary: ``elmo.text.pipeline``); ``pipeline`` is used only for a vocabulary without one
        (saved before the pipeline was; without either, the default normaliser and the vocabulary's
        tokenizer settings, with a warning).
        """
        directory = resolve_model_dir(path_or_uri)
        vdir = vocab_dir(directory)
        if vdir is None:
            raise FileNotFoundError(f"{directory}: the biLM was saved without its vocabulary (vocab/)")
        vocab = Vocabulary.load(vdir)
        if (vdir / TEXT_PIPELINE_FILE).is_file() or (pipeline is None and vocab.tokenizer_config):
            pipeline = TextPipeline.load(vdir, legacy_tokenizer=vocab.tokenizer_config or None)
        return cls(BiLM.load(directory), vocab, pipeline, **kwargs)

    # ------------------------------------------------------------------ tokens
    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Token lists of raw texts, through the biLM's text pipeline (normalised, then analysed)."""
        if self.pipeline is None:
            raise ValueError("this Elmo has no text pipeline: pass token lists, or load it with pipeline=...")
        return self.pipeline.tokenize(list(texts))

    def _as_tokens(self, inputs: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str]]:
        if isinstance(inputs, str):
            raise TypeError("embed() takes a list of texts or of token lists, not one string")
        inputs = list(inputs)
        if all(isinstance(x, str) for x in inputs):
            return self.tokenize(inputs)
        if not all(isinstance(x, (list, tuple)) and all(isinstance(t, str) for t in x) for x in inputs):
            raise TypeError("embed() takes a list of texts (str) or a list of token lists (list[str])")
        return [list(x) for x in inputs]

    # ------------------------------------------------------------------ layers
    def batches(self, token_lists: Sequence[Sequence[str]]) -> Iterator[list[int]]:
        """Indices of the sentences, grouped by length into batches of <= max_batch_tokens padded tokens
        (in length order: elmo.data.sampler.length_batches without shuffling, one pool)."""
        lengths = np.array([len(t) for t in token_lists], dtype=np.int64)
        for batch in length_batches(lengths, max_tokens=self.max_batch_tokens):
            yield batch.tolist()

    @torch.no_grad()
    def layer_batch(self, token_lists: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """The biLM layers of each sentence of one batch: (L+1, n_i, 2P) float32 each."""
        for i, toks in enumerate(token_lists):
            if len(toks) == 0:
                raise ValueError(f"sentence {i} has no tokens (ELMo needs at least one)")
        batch = encode_batch(self.vocab, [list(t) for t in token_lists])
        chars, mask = batch.chars, batch.mask
        lengths = mask.sum(dim=1)
        expected = torch.tensor([len(t) + 2 for t in token_lists])
        if not torch.equal(lengths.cpu(), expected):
            raise RuntimeError("encode_batch must wrap each sentence as [<bos>, w1..wn, <eos>]")
        layers = self.bilm.layer_outputs(chars, mask)  # (L+1, B, T, 2P)
        return [layers[:, b, 1:int(n) - 1].float().clone() for b, n in enumerate(lengths)]

    def iter_layers(self, token_lists: Sequence[Sequence[str]], progress: bool = False,
                    desc: str = "elmo layers") -> Iterator[tuple[int, torch.Tensor]]:
        """(index, layers (L+1, n, 2P)) for every sentence, in batch order (not input order)."""
        total = sum(len(t) for t in token_lists)
        with tqdm(total=total, unit="tok", desc=desc, disable=not progress, mininterval=1.0) as bar:
            for idx in self.batches(token_lists):
                for i, layers in zip(idx, self.layer_batch([token_lists[i] for i in idx])):
                    yield i, layers
                bar.update(sum(len(token_lists[i]) for i in idx))

    def embed(self, inputs: Sequence[str] | Sequence[Sequence[str]], mix: ScalarMix | str | None = "average",
              progress: bool = False) -> EmbedOutput:
        """Layers (and mixed vectors) for raw texts or token lists, in input order.

        mix: a :class:`ScalarMix`, ``"average"`` (equal weights, γ = 1), or None for layers only.
        """
        tokens = self._as_tokens(inputs)
        layers: list[torch.Tensor | None] = [None] * len(tokens)
        for i, h in self.iter_layers(tokens, progress=progress):
            layers[i] = h
        mixed = None
        if mix is not None:
            mixer = ScalarMix(self.n_layers) if mix == "average" else mix
            if not isinstance(mixer, ScalarMix):
                raise ValueError(f"mix must be a ScalarMix, 'average' or None, got {mix!r}")
            with torch.no_grad():
                mixed = [mixer(h) for h in layers]
        return EmbedOutput(tokens=tokens, layers=layers, mixed=mixed)  # type: ignore[arg-type]


EMBED_ARRAYS = ("tokens.npy", "offsets.npy", "line_numbers.npy")  # in every .npz embed_file writes


def written_by_embed(path: Path) -> bool:
    """Whether ``path`` looks like an earlier :func:`embed_file` output (an .npz with its arrays)."""
    try:
        with zipfile.ZipFile(path) as z:
            return set(EMBED_ARRAYS) <= set(z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def embed_file(elmo: Elmo, src: Path, dest: Path, *, layers: bool = True, progress: bool = True) -> dict:
    """Embed each non-empty line of a UTF-8 text file; write an .npz (no pickle) atomically.

    Arrays: ``tokens`` (N_tok,) str, ``offsets`` (n_lines+1,) int64 (line i owns tokens
    offsets[i]:offsets[i+1]), ``line_numbers`` (n_lines,) 1-based line in ``src``, and ``layers``
    (N_tok, L+1, 2P) float32 or ``mixed`` (N_tok, 2P) (the average mix) when ``layers`` is false.
    """
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file")
    texts, numbers = [], []
    with open(src, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                texts.append(line.strip())
                numbers.append(lineno)
    tokens = elmo.tokenize(texts) if texts else []
    empty = [numbers[i] for i, t in enumerate(tokens) if not t]
    if empty:
        raise ValueError(f"{src}: line {empty[0]}: no tokens after analysis ({len(empty)} such line(s))")
    out = elmo.embed(tokens, mix=None if layers else "average", progress=progress)
    offsets = np.cumsum([0] + [len(t) for t in tokens]).astype(np.int64)
    arrays = {
        "tokens": np.array([w for t in tokens for w in t], dtype=str),
        "offsets": offsets,
        "line_numbers": np.array(numbers, dtype=np.int64),
    }
    width = (elmo.n_layers, elmo.dim) if layers else (elmo.dim,)
    if layers:
        vecs = [h.permute(1, 0, 2).numpy() for h in out.layers]
    else:
        vecs = [m.numpy() for m in out.mixed or []]
    key = "layers" if layers else "mixed"
    arrays[key] = np.concatenate(vecs) if vecs else np.zeros((0, *width), np.float32)
    with atomic_path(dest, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return {"file": str(dest), "lines": len(texts), "tokens": int(offsets[-1]), "array": key,
            "shape": list(arrays[key].shape)}
