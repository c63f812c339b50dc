"""Params of the pretrain stage (see elmo/stages/pretrain.py, elmo/model/ and elmo/train/).

``pretrain.preset`` picks one of ``pretrain.presets`` — each a model shape (``model``) and the way
to train it (``train``): ``tiny`` (tests, seconds), ``small`` (the CPU default: 2000 steps, about half
an hour on 2 cores), ``medium`` (2 cores, about an hour) and ``full`` (the paper's
size, for GPUs). The built-ins are stated once, in elmo/params/presets.py; a preset under
``pretrain.presets`` in params.yaml overrides the built-in one of its name key by key.
``pretrain.trainer`` says where it runs (Lightning's accelerator, devices, num_nodes, strategy,
precision), not what it computes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from elmo.dicts import deep_merge
from elmo.params.base import Section, runtime_only, runtime_only_keys
from elmo.params.paths import WorkspacePath
from elmo.params.presets import BUILTIN


class ModelParams(Section):
    """The biLM's shape (elmo.model.BiLMConfig without the vocabulary sizes, which come from the data),
    and its one validator: BiLMConfig checks its shape fields with this model (so a config.json and a
    preset obey the same rules) and adds only the checks that need the vocabulary. A rule across keys
    raises a message that starts with the key it names."""

    char_embed_dim: int = Field(16, ge=1)
    filters: list[tuple[int, int]] = Field(  # (width, count) pairs of the char CNN
        default_factory=lambda: [(1, 32), (2, 32), (3, 64), (4, 128), (5, 256), (6, 512), (7, 1024)], min_length=1)
    activation: Literal["relu", "tanh"] = "relu"
    highway_layers: int = Field(2, ge=0)
    projection_dim: int = Field(512, ge=1)  # P: token vector and LSTM projection size
    lstm_dim: int = Field(4096, ge=2)  # H: LSTM cell size (> P)
    n_layers: int = Field(2, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    softmax: Literal["full", "sampled", "adaptive"] = "sampled"
    n_samples: int = Field(8192, ge=1)  # sampled: negatives per step
    adaptive_cutoffs: list[int] = Field(default_factory=lambda: [4000, 20000])  # adaptive: cluster bounds
    adaptive_div_value: float = Field(4.0, gt=0)

    @model_validator(mode="after")
    def _shape(self):
        for w, n in self.filters:
            if w < 1 or n < 1:
                raise ValueError(f"filters: width and count must be positive, got ({w}, {n})")
        if self.projection_dim >= self.lstm_dim:  # nn.LSTM requires proj_size < hidden_size
            raise ValueError(f"projection_dim: must be smaller than lstm_dim={self.lstm_dim}, "
                             f"got {self.projection_dim}")
        if self.adaptive_cutoffs != sorted(set(self.adaptive_cutoffs)) or any(c < 1 for c in self.adaptive_cutoffs):
            raise ValueError(f"adaptive_cutoffs: must be increasing positive word ids, got {self.adaptive_cutoffs}")
        return self


class TrainParams(Section):
    """Optimisation and its budget. The run ends at max_steps (or max_epochs, if fewer steps); max_minutes
    is an opt-in wall clock that ends it earlier on a slower machine (ended_by: clock, elmo/budget.py)."""

    # padded positions (sentences x longest, with <bos>/<eos>) per batch and device
    batch_tokens: int = Field(4096, ge=3)
    optimizer: Literal["adam", "adamw", "adagrad", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)  # adam/adamw
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.0, ge=0, lt=1)  # sgd
    # after warmup, decays to min_lr_ratio x lr at max_steps
    schedule: Literal["constant", "linear", "cosine"] = "linear"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    grad_clip: float = Field(5.0, gt=0)  # max global L2 norm of the gradient (LSTMs still explode)
    max_steps: int = Field(10_000, ge=1)
    max_epochs: int | None = Field(None, ge=1)
    # opt-in wall-clock budget of the training loop (resumes count it); null: none, the result does not depend
    # on the machine's speed
    max_minutes: float | None = Field(None, gt=0)
    val_every_steps: int = Field(500, ge=1)  # validation (exact softmax) and best-checkpoint cadence
    val_batches: int | None = Field(20, ge=1)  # batches of the valid split per validation during training (null: all)
    # final valid/test perplexity on at most this many tokens per split (null: all)
    eval_max_tokens: int | None = Field(None, ge=1)
    checkpoint_every_steps: int = Field(200, ge=1)
    log_every_steps: int = Field(10, ge=1)


class PresetParams(Section):
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()


class TrainerParams(Section):
    """Where training runs: Lightning's Trainer arguments. A 2-process CPU run: devices 2, strategy ddp."""

    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    # processes per node: auto = every GPU, or on a CPU one single-threaded process per core (max 8)
    devices: int | Literal["auto"] = Field("auto")
    num_nodes: int = Field(1, ge=1)
    strategy: Literal["auto", "ddp", "ddp_find_unused_parameters_true"] = "auto"  # auto: ddp when more than one process
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"  # auto: bf16-mixed on a GPU, else 32-true
    threads: int = runtime_only(0, ge=0)  # torch threads per process; 0 = the usable cores / processes per node


def builtin_presets() -> dict[str, PresetParams]:
    """The built-in presets (elmo/params/presets.py), validated."""
    return {name: PresetParams.model_validate(p) for name, p in BUILTIN.items()}


class InitTrainParams(Section):
    """How an ``init: previous`` run trains: the selected preset's train settings with a smaller budget
    and peak lr (the schedule, warmup included, is the preset's, scaled to the shorter run)."""

    steps_fraction: float = Field(0.25, gt=0, le=1)  # max_steps (and warmup_steps) = this x the preset's
    lr_scale: float = Field(0.5, gt=0)  # peak lr = this x the preset's lr


class PretrainParams(Section):
    vocab_dir: str = "data/processed/vocab"  # what the vocab stage writes (vocab.out_dir)
    arrays_dir: str = "data/processed/arrays"  # ... and its training arrays (vocab.arrays_dir)
    out_dir: WorkspacePath = "models/bilm"  # config.json, weights.safetensors, vocab/
    checkpoint_dir: WorkspacePath = runtime_only("models/checkpoints/bilm")  # last/best/periodic; not a DVC output
    metrics: WorkspacePath = "metrics/pretrain.json"
    plots_dir: WorkspacePath = "plots/pretrain"  # loss.csv, perplexity.csv (dvc plots)
    resume: bool = runtime_only(True)  # continue an interrupted run of the same config, data and code
    preset: str = "small"  # a built-in preset (tiny, small, medium, full) or one you add under presets
    # scratch: random weights, the vocab stage's vocabulary. previous: continue from the biLM already in
    # out_dir (DVC keeps it: persist), its word vocabulary kept, missing characters added; scratch if none
    init: Literal["scratch", "previous"] = "scratch"
    init_train: InitTrainParams = InitTrainParams()
    # clean's table (clean.out_parquet): the month of each petition, for the months the biLM has seen
    # (its config.json) and the drift report of a biLM meeting months it has never seen
    petitions: str = "data/interim/petitions.parquet"
    presets: dict[str, PresetParams] = Field(default_factory=builtin_presets)
    trainer: TrainerParams = TrainerParams()

    @model_validator(mode="before")
    @classmethod
    def _merge_presets(cls, data):
        """A preset in params.yaml overrides the built-in one of the same name key by key."""
        if isinstance(data, dict) and isinstance(data.get("presets"), dict):
            builtin = builtin_presets()
            merged = {name: p.model_dump() for name, p in builtin.items()}
            for name, given in data["presets"].items():
                base = builtin.get(name)
                merge = base is not None and isinstance(given, dict)
                merged[name] = deep_merge(base.model_dump(), given) if merge else given
            data = {**data, "presets": merged}
        return data

    @model_validator(mode="after")
    def _preset_exists(self):
        if self.preset not in self.presets:
            raise ValueError(f"preset {self.preset!r} is not defined under presets (has: {', '.join(self.presets)})")
        return self

    @property
    def selected(self) -> PresetParams:
        return self.presets[self.preset]


# Keys that change how the stage runs but never what it writes (dvc.yaml leaves them out of the
# stage's params, so changing them does not rerun it; tests/test_pretrain.py and
# tests/test_runtime_only.py check that, and that the checkpoint fingerprint leaves them out).
RUNTIME_ONLY = runtime_only_keys(PretrainParams)
