"""A finetuned classifier as a self-contained directory, and its loader.

    models/ynat/
      config.json          {"format": "elmo-ko/classifier", "format_version": 1, "labels": [...],
                            "task": TaskConfig, "max_tokens": 64, "meta": {...}}
      weights.safetensors  the task model (mixes, word embedding, RNN, output layer)
      words.txt            the task word vocabulary
      text_pipeline.json   how raw text becomes tokens: the pretraining corpus's text pipeline
                           (normaliser + tokenizer, elmo.text.pipeline)
      bilm/                the frozen biLM with its vocab/ (only when the model uses ELMo)

``config.json``'s ``layer_dtype`` is the precision of the biLM layers the model was trained on (the
layer cache's, ``finetune.cache_dtype``): served layers are rounded to it, so the classifier serves
exactly what was measured. A directory from before the text pipeline was saved (``tokenizer.json``
only) loads with the default normaliser and a warning; one without ``layer_dtype`` serves float32.

``Classifier.load(dir).predict(["헤드라인", ...])`` -> ``[{"label": str, "probs": {label: p}}, ...]``
(what ``elmo predict`` prints and the registry's pyfunc serves). No pickle anywhere.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from elmo.embed.cache import pad_layers
from elmo.embed.elmo import Elmo
from elmo.io import model_directory
from elmo.model import vocab_dir
from elmo.task.baseline import TfidfModel
from elmo.task.ensemble import Ensemble
from elmo.task.model import BiLMTaskModel, TaskConfig, TaskModel
from elmo.task.train import TaskData, predict_proba
from elmo.task.words import TaskWords
from elmo.text.pipeline import TextPipeline

FORMAT = "elmo-ko/classifier"
FORMAT_VERSION = 1
LAYER_DTYPES = ("float16", "float32")
LEGACY_TOKENIZER_FILE = "tokenizer.json"  # what a classifier directory held before text_pipeline.json


def save_classifier(directory: str | Path, *, model, labels: list[str], words: TaskWords,
                    pipeline: TextPipeline, max_tokens: int, bilm_dir: str | Path | None,
                    layer_dtype: str, tfidf=None, ensemble: dict | None = None,
                    meta: dict | None = None) -> Path:
    """Write the classifier. ``model`` is a :class:`TaskModel` (its frozen biLM copied from ``bilm_dir``)
    or a :class:`BiLMTaskModel` (its biLM saved as trained, with ``bilm_dir``'s vocabulary). With
    ``tfidf`` (a :class:`~elmo.task.baseline.TfidfModel`) and ``ensemble`` (an
    :class:`~elmo.task.ensemble.Ensemble` as a dict) the classifier is their product (``tfidf/``).
    ``layer_dtype``: the precision of the biLM layers the model was trained on (float16 or float32)."""
    directory = Path(directory)
    head = model.head if isinstance(model, BiLMTaskModel) else model
    if head.cfg.use_elmo and bilm_dir is None:
        raise ValueError("a model that uses ELMo is saved with its biLM (bilm_dir)")
    if layer_dtype not in LAYER_DTYPES:
        raise ValueError(f"layer_dtype must be one of {', '.join(LAYER_DTYPES)}, got {layer_dtype!r}")
    if (tfidf is None) != (ensemble is None):
        raise ValueError("an ensemble classifier needs both the TF-IDF model and the ensemble's weights")
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "labels": labels, "task": head.cfg.to_dict(),
           "max_tokens": max_tokens, "layer_dtype": layer_dtype, "ensemble": ensemble, "meta": meta or {}}
    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    with model_directory(directory, config=doc, weights=state, model_format=FORMAT) as tmp:
        words.save(tmp / "words.txt")
        pipeline.save(tmp)
        if isinstance(model, BiLMTaskModel):
            model.bilm.save(tmp / "bilm", vocab_dir=vocab_dir(bilm_dir), meta={"finetuned_in_classifier": True})
        elif head.cfg.use_elmo:
            shutil.copytree(bilm_dir, tmp / "bilm")
        if tfidf is not None:
            (tmp / "tfidf").mkdir()
            tfidf.save(tmp / "tfidf")
    return directory


class Classifier:
    def __init__(self, model: TaskModel, labels: list[str], words: TaskWords, pipeline: TextPipeline, elmo=None,
                 max_tokens: int = 64, tfidf=None, ensemble=None, layer_dtype: str = "float32") -> None:
        if model.cfg.use_elmo and elmo is None:
            raise ValueError("this model uses ELMo: pass the Elmo it was trained with")
        self.model = model.eval()
        self.labels = labels
        self.words = words
        self.pipeline = pipeline
        self.elmo = elmo
        self.layer_dtype = layer_dtype
        self.max_tokens = max_tokens
        self.tfidf, self.ensemble = tfidf, ensemble  # the TF-IDF half and its Ensemble, or None

    @classmethod
    def load(cls, directory: str | Path) -> Classifier:
        directory = Path(directory)
        cfg_path = directory / "config.json"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{cfg_path}: no such file "
                                    "(not a classifier directory; `elmo finetune` writes one)")
        try:
            doc = json.loads(cfg_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{cfg_path}: not valid JSON: {err}") from None
        if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{cfg_path}: format {doc.get('format')!r} version {doc.get('format_version')!r}, "
                             f"expected {FORMAT!r} version {FORMAT_VERSION}")
        model = TaskModel(TaskConfig.from_dict(doc["task"]))
        state = load_file(str(directory / "weights.safetensors"))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{directory / 'weights.safetensors'}: weights do not match config.json "
                             f"(missing: {', '.join(missing) or '-'}; unexpected: {', '.join(unexpected) or '-'})")
        pipeline = TextPipeline.load(directory, legacy_tokenizer=_legacy_tokenizer(directory))
        elmo = Elmo.load(directory / "bilm", pipeline=pipeline) if model.cfg.use_elmo else None
        tfidf = ensemble = None
        if doc.get("ensemble"):
            tfidf, ensemble = TfidfModel.load(directory / "tfidf"), Ensemble(**doc["ensemble"])
            if tfidf.labels != list(doc["labels"]):
                raise ValueError(f"{directory / 'tfidf'}: its labels differ from config.json's")
        layer_dtype = doc.get("layer_dtype", "float32")
        if layer_dtype not in LAYER_DTYPES:
            raise ValueError(f"{cfg_path}: layer_dtype {layer_dtype!r}, expected one of {', '.join(LAYER_DTYPES)}")
        return cls(model, list(doc["labels"]), TaskWords.load(directory / "words.txt"), pipeline, elmo,
                   int(doc["max_tokens"]), tfidf, ensemble, layer_dtype)

    def normalize(self, texts: Sequence[str]) -> list[str]:
        """The texts through the text pipeline's normaliser (what the model was trained on)."""
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i}: expected a string, got {type(text).__name__}")
            _check_unicode(text, i)
        return self.pipeline.normalize(list(texts))

    def tokens(self, texts: Sequence[str]) -> list[list[str]]:
        out = []
        for i, (text, norm) in enumerate(zip(texts, self.normalize(texts))):
            toks = self.pipeline.tokenizer.tokenize(norm)[: self.max_tokens]
            if not toks:
                raise ValueError(f"text {i} is empty (no tokens after analysis): {text!r}")
            out.append(toks)
        return out

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(N, K) class probabilities, columns in ``self.labels`` order."""
        if isinstance(texts, str):
            raise TypeError("predict() takes a list of texts, not one string")
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        tokens = self.tokens(texts)
        layers = None
        if self.model.cfg.use_elmo:
            layers = _MemoryLayers(self.elmo, tokens, self.layer_dtype)
        data = TaskData([self.words.ids(t) for t in tokens], np.zeros(len(tokens), dtype=np.int64), layers)
        probs = predict_proba(self.model, data)
        if self.ensemble is not None:
            probs = self.ensemble.combine(probs, self.tfidf.predict_proba(self.normalize(texts)))
        return probs

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        probs = self.predict_proba(texts)
        return [{"label": self.labels[int(p.argmax())], "probs": {lab: float(q) for lab, q in zip(self.labels, p)}}
                for p in probs]


def _check_unicode(text: str, i: int) -> None:
    """A text the tagger can read: no lone surrogate (Python's stand-in for bytes that are not UTF-8,
    e.g. in a command-line argument, or half of a UTF-16 pair)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        c = ord(text[err.start])
        what = (f"the byte 0x{c - 0xDC00:02x}, which is not UTF-8" if 0xDC80 <= c <= 0xDCFF
                else f"a lone surrogate U+{c:04X}")
        raise ValueError(f"text {i}: not valid UTF-8 text: character {err.start} is {what}: {text!r}") from None


def _legacy_tokenizer(directory: Path) -> dict | None:
    """The tokenizer settings of a classifier saved before its text pipeline was (None if absent)."""
    path = directory / LEGACY_TOKENIZER_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


class _MemoryLayers:
    """The LayerCache interface over layers computed now, in memory (prediction on raw text), stored
    in ``dtype`` as the layer cache the model was trained on stores them (elmo/embed/cache.py)."""

    def __init__(self, elmo, tokens: list[list[str]], dtype: str = "float32") -> None:
        self._layers: list[np.ndarray] = [None] * len(tokens)  # type: ignore[list-item]
        for i, h in elmo.iter_layers(tokens):
            self._layers[i] = h.permute(1, 0, 2).numpy().astype(dtype)  # (n, L+1, D)

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, i: int) -> np.ndarray:
        return self._layers[i]

    def lengths(self) -> np.ndarray:
        return np.array([len(h) for h in self._layers])

    def padded(self, idx):
        return pad_layers([self._layers[i] for i in idx])
