"""What a checkpoint must match to be resumed (elmo/train/checkpoints.py ``prepare``): the run's fingerprint."""

from __future__ import annotations

from elmo.model import BiLMConfig
from elmo.params.base import runtime_only_keys
from elmo.params.pretrain import TrainerParams, TrainParams
from elmo.train.checkpoints import code_hash, fingerprint
from elmo.train.inputs import Inputs
from elmo.train.trainer import TrainerSettings


def trainer_fingerprint(trainer: TrainerParams) -> dict:
    """The trainer settings that belong in the checkpoint fingerprint: all but the runtime-only
    ones (threads) and ``devices``, which the fingerprint records resolved, as ``world``."""
    return trainer.model_dump(exclude={*runtime_only_keys(TrainerParams), "devices"})


def run_fingerprint(config: BiLMConfig, train: TrainParams, seed: int, settings: TrainerSettings,
                    trainer: TrainerParams, inputs: Inputs, init: dict | None = None) -> str:
    """What a checkpoint must match to be resumed: model, training, seed, processes, trainer, data, code,
    and for an ``init: previous`` run the weights it started from."""
    return fingerprint({"config": config.to_dict(), "train": train.model_dump(), "seed": seed,
                        "world": settings.world, "accelerator": settings.accelerator,
                        "trainer": trainer_fingerprint(trainer), "vocab_sha256": inputs.vocab.sha256,
                        "arrays": inputs.arrays_meta, "code": code_hash(), **({"init": init} if init else {})})
