"""The biLM's shape, as one plain dataclass (saved as ``config.json`` beside the weights).

Names follow Peters et al. 2018 and bilm-tf: ``filters`` are (width, count) pairs of the character
CNN, ``projection_dim`` P is both the token vector size and the LSTM projection size, ``lstm_dim``
H the LSTM cell size. ``from_dict(to_dict(c)) == c``; an unknown or missing key is an error that
names the key, so a config.json written by another version fails loudly instead of half-loading.

The shape (every field but the vocabulary sizes) is validated by one validator, the params model
``pretrain.presets.<name>.model`` (:class:`elmo.params.pretrain.ModelParams`): a preset in
params.yaml and a config.json obey the same rules; :meth:`BiLMConfig.validate` adds the checks that
need the vocabulary (its sizes, filters no wider than a token, adaptive clusters that fit).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from elmo.params.pretrain import ModelParams

SOFTMAX_KINDS = ("full", "sampled", "adaptive")
ACTIVATIONS = ("relu", "tanh")
CONFIG_VERSION = 1


@dataclass(frozen=True)
class BiLMConfig:
    # vocabularies (from elmo/vocab): the word vocab is the softmax's output space
    vocab_size: int  # V, word ids 0..V-1 (<pad>=0, <unk>=1, <bos>=2, <eos>=3, then by frequency)
    n_chars: int  # char ids 0..n_chars-1
    max_chars: int  # C, char units per token (incl. begin/end-of-word markers)
    char_pad_id: int = 0
    # token encoder: char embedding -> CNN -> max over positions -> activation -> highway -> projection
    char_embed_dim: int = 16
    filters: tuple[tuple[int, int], ...] = ((1, 32), (2, 32), (3, 64), (4, 128), (5, 256), (6, 512), (7, 1024))
    activation: str = "relu"
    highway_layers: int = 2
    # biLM: L LSTM layers per direction, cell H, projection P, residual from layer 1 on
    projection_dim: int = 512
    lstm_dim: int = 4096
    n_layers: int = 2
    dropout: float = 0.1
    # tied output layer of both directions
    softmax: str = "sampled"
    n_samples: int = 8192  # sampled: negatives per step (log-uniform over the frequency-sorted vocab)
    adaptive_cutoffs: tuple[int, ...] = (4000, 20000)  # adaptive: cluster boundaries (ids < V)
    adaptive_div_value: float = 4.0
    version: int = field(default=CONFIG_VERSION)

    def __post_init__(self) -> None:
        # normalise lists (from JSON/YAML) to tuples so the config is hashable and comparable
        object.__setattr__(self, "filters", tuple(tuple(int(x) for x in f) for f in self.filters))
        object.__setattr__(self, "adaptive_cutoffs", tuple(int(x) for x in self.adaptive_cutoffs))
        self.validate()

    def validate(self) -> None:
        def bad(key: str, why: str) -> ValueError:
            return ValueError(f"BiLMConfig.{key}: {why}")

        try:
            ModelParams.model_validate(self.shape())
        except ValidationError as err:
            e = err.errors()[0]
            key, msg = ".".join(str(p) for p in e["loc"]), e["msg"].removeprefix("Value error, ")
            raise (bad(key, msg) if key else ValueError(f"BiLMConfig.{msg}")) from None  # msg "key: why"
        if self.vocab_size < 5:
            raise bad("vocab_size", f"must be at least 5 (4 specials + 1 word), got {self.vocab_size}")
        if self.n_chars < 2:
            raise bad("n_chars", f"must be at least 2, got {self.n_chars}")
        if not 0 <= self.char_pad_id < self.n_chars:
            raise bad("char_pad_id", f"must be in [0, n_chars={self.n_chars}), got {self.char_pad_id}")
        for w, _ in self.filters:
            if w > self.max_chars:
                raise bad("filters", f"width {w} is wider than max_chars={self.max_chars}")
        n_tails = len(self.effective_cutoffs)
        if self.softmax == "adaptive" and int(self.projection_dim // self.adaptive_div_value ** n_tails) < 1:
            # nn.AdaptiveLogSoftmaxWithLoss gives tail i the size P // div**(i+1); 0 would be degenerate
            raise bad("adaptive_div_value", f"{self.adaptive_div_value} ** {n_tails} clusters leaves the last "
                                            f"cluster no dimensions at projection_dim={self.projection_dim}")

    def shape(self) -> dict[str, Any]:
        """The fields the params model holds (everything but the vocabulary sizes and the version)."""
        return {k: getattr(self, k) for k in ModelParams.model_fields}

    @property
    def n_filters(self) -> int:
        return sum(n for _, n in self.filters)

    @property
    def effective_cutoffs(self) -> list[int]:
        """Adaptive cutoffs that fit this vocabulary (a tiny vocab drops the clusters beyond it)."""
        return [c for c in self.adaptive_cutoffs if c < self.vocab_size - 1]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["filters"] = [list(f) for f in self.filters]
        d["adaptive_cutoffs"] = list(self.adaptive_cutoffs)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BiLMConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"BiLMConfig: unknown key(s) {', '.join(unknown)}")
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"BiLMConfig: missing key(s) {', '.join(missing)}")
        if d.get("version", CONFIG_VERSION) != CONFIG_VERSION:
            raise ValueError(f"BiLMConfig: version {d['version']} is not supported (this code reads {CONFIG_VERSION})")
        return cls(**d)

    def replace(self, **changes: Any) -> BiLMConfig:
        return dataclasses.replace(self, **changes)
