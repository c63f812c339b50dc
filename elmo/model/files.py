"""A saved biLM is a directory — no pickle anywhere:

    config.json          {"format": "elmo-ko/bilm", "format_version": 1, "config": {...BiLMConfig},
                          "vocab": "vocab" | null, "meta": {...}}
    weights.safetensors  the state dict (float32)
    vocab/               the vocabulary files the model was trained with (elmo/vocab's layout)

Written through :func:`elmo.io.model_directory` (as the classifier's): a crash leaves the old directory
or none, and every file has the same mode.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from elmo.io import MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE, model_directory
from elmo.model.config import BiLMConfig

FORMAT = "elmo-ko/bilm"
FORMAT_VERSION = 1
CONFIG_FILE = MODEL_CONFIG_FILE
WEIGHTS_FILE = MODEL_WEIGHTS_FILE
VOCAB_SUBDIR = "vocab"


def save_bilm(model: torch.nn.Module, directory: str | Path, *, vocab_dir: str | Path | None = None,
              meta: dict | None = None) -> Path:
    directory = Path(directory)
    if vocab_dir is not None and not Path(vocab_dir).is_dir():
        raise FileNotFoundError(f"{vocab_dir}: vocabulary directory not found (needed to save the biLM with it)")
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "vocab": VOCAB_SUBDIR if vocab_dir is not None else None,
        "meta": meta or {},
    }
    with model_directory(directory, config=doc, weights=state, model_format=FORMAT) as tmp:
        if vocab_dir is not None:
            shutil.copytree(vocab_dir, tmp / VOCAB_SUBDIR)
    return directory


def read_config(directory: str | Path) -> dict:
    """The parsed config.json of a saved biLM, checked; errors name the file."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (not a saved biLM directory; `elmo pretrain` writes one)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: field format is {doc.get('format') if isinstance(doc, dict) else doc!r}, "
                         f"expected {FORMAT!r}")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: field format_version is {doc.get('format_version')!r}, "
                         f"this code reads {FORMAT_VERSION}")
    try:
        doc["config"] = BiLMConfig.from_dict(doc.get("config") or {})
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: field config: {err}") from None
    return doc


def vocab_dir(directory: str | Path) -> Path | None:
    """Where the vocabulary saved with the biLM lives (None when it was saved without one)."""
    rel = read_config(directory).get("vocab")
    return Path(directory) / rel if rel else None


def load_bilm(directory: str | Path, map_location: str | torch.device = "cpu", *,
              model_class: type[torch.nn.Module]) -> torch.nn.Module:
    """Rebuild the biLM saved in ``directory`` as ``model_class`` (``BiLM.load`` passes
    :class:`elmo.model.bilm.BiLM`: this module does not import bilm, so the two have no cycle)."""
    directory = Path(directory)
    doc = read_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: no such file")
    try:
        state = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{weights}: not a readable safetensors file: {err}") from None
    model = model_class(doc["config"])
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise ValueError(f"{weights}: weights do not match {CONFIG_FILE} (missing: {', '.join(missing) or '-'}; "
                         f"unexpected: {', '.join(unexpected) or '-'}; shapes: {', '.join(shapes[:3]) or '-'}"
                         f"{' …' if len(shapes) > 3 else ''})")
    model.load_state_dict(state, strict=True)
    if doc.get("vocab") and not (directory / doc["vocab"]).is_dir():
        raise FileNotFoundError(f"{directory / doc['vocab']}: the vocabulary named in {CONFIG_FILE} is missing")
    return model.to(map_location).eval()
