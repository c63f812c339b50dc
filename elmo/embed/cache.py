"""Frozen biLM layer outputs, computed once and reused by every epoch (and every later run).

The biLM does not change during finetuning, so its L+1 layers for a sentence are a pure function
of (biLM weights, vocabulary, tokens). :func:`cached_layers` stores them for a list of sentences
in a directory named by a hash of exactly those inputs::

    <cache_dir>/<key>/layers.npy    (N_tokens, L+1, 2P) float16 (or float32), memory-mapped on read
                      offsets.npy   (N_sentences+1,) int64: sentence i owns rows offsets[i]:offsets[i+1]
                      meta.json     key, model fingerprint, shapes, dtype

A different biLM, vocabulary, tokenization or dtype gives another key, so a stale cache is never
read. The directory is written through :func:`elmo.io.atomic_path` (complete or absent).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from elmo.io import atomic_path, atomic_write_json, sha256_file

FORMAT = "elmo-ko/layer-cache"


def model_fingerprint(model_dir: str | Path) -> str:
    """sha256 over every file of a saved biLM directory (config, weights, vocabulary), by relative path."""
    model_dir = Path(model_dir)
    h = hashlib.sha256()
    for p in sorted(q for q in model_dir.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(model_dir)).encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def tokens_fingerprint(token_lists: list[list[str]]) -> str:
    h = hashlib.sha256()
    for toks in token_lists:
        h.update("\x1f".join(toks).encode("utf-8") + b"\x1e")
    return h.hexdigest()


@dataclass
class LayerCache:
    """Read access to cached layers: ``cache[i]`` is sentence i's (n_i, L+1, 2P) array."""

    path: Path
    layers: np.ndarray  # (N_tokens, L+1, D), memory-mapped
    offsets: np.ndarray  # (N+1,)
    hit: bool  # True when it was already on disk

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.layers[self.offsets[i]:self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def padded(self, idx: list[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentences ``idx`` as (B, L+1, T, D) float32 (zeros at pads) and mask (B, T) bool."""
        return pad_layers([self[i] for i in idx])


def pad_layers(items: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sentence (n_i, L+1, D) arrays -> (B, L+1, T, D) float32, zeros at pads, and mask (B, T)."""
    lens = [len(x) for x in items]
    T = max(lens)
    _, L1, D = items[0].shape
    out = np.zeros((len(items), T, L1, D), dtype=np.float32)
    for b, x in enumerate(items):
        out[b, :lens[b]] = x
    mask = torch.arange(T).unsqueeze(0) < torch.tensor(lens).unsqueeze(1)
    return torch.from_numpy(out).permute(0, 2, 1, 3), mask


def open_cache(path: Path) -> LayerCache:
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path / 'meta.json'}: field format is {meta.get('format')!r}, expected {FORMAT!r}")
    layers = np.load(path / "layers.npy", mmap_mode="r")
    offsets = np.load(path / "offsets.npy")
    if layers.shape[0] != offsets[-1] or list(layers.shape) != meta["shape"]:
        raise ValueError(f"{path}: layers.npy shape {layers.shape} does not match offsets/meta.json")
    return LayerCache(path, layers, offsets, hit=True)


def cached_layers(elmo, token_lists: list[list[str]], cache_dir: str | Path, *, model_dir: str | Path,
                  dtype: str = "float16", progress: bool = True, desc: str = "elmo layers") -> LayerCache:
    """The biLM layers of ``token_lists`` from the cache, computing (and storing) them if absent."""
    if dtype not in ("float16", "float32"):
        raise ValueError(f"cache dtype must be float16 or float32, got {dtype!r}")
    fp = model_fingerprint(model_dir)
    key = hashlib.sha256(f"{FORMAT}\n{fp}\n{tokens_fingerprint(token_lists)}\n{dtype}".encode()).hexdigest()[:24]
    path = Path(cache_dir) / key
    if (path / "meta.json").is_file():
        return open_cache(path)
    offsets = np.cumsum([0] + [len(t) for t in token_lists]).astype(np.int64)
    shape = (int(offsets[-1]), elmo.n_layers, elmo.dim)
    with atomic_path(path) as tmp:
        tmp.mkdir()
        arr = np.lib.format.open_memmap(tmp / "layers.npy", mode="w+", dtype=np.dtype(dtype), shape=shape)
        for i, h in elmo.iter_layers(token_lists, progress=progress, desc=desc):
            arr[offsets[i]:offsets[i + 1]] = h.permute(1, 0, 2).numpy().astype(dtype)  # (n, L+1, D)
        arr.flush()
        del arr
        np.save(tmp / "offsets.npy", offsets)
        atomic_write_json(tmp / "meta.json", {"format": FORMAT, "key": key, "model_fingerprint": fp,
                                              "sentences": len(token_lists), "shape": list(shape), "dtype": dtype})
    cache = open_cache(path)
    cache.hit = False
    return cache
