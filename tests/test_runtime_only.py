"""Runtime-only params are marked once (elmo.params.base.runtime_only); the RUNTIME_ONLY tuples,
dvc.yaml's params lists and pretrain's checkpoint fingerprint all follow that mark."""

from __future__ import annotations

from pathlib import Path

import yaml

from elmo.params import Params
from elmo.params.base import runtime_only_keys
from elmo.params.pretrain import RUNTIME_ONLY as PRETRAIN_RUNTIME_ONLY, TrainerParams
from elmo.params.tokenize import RUNTIME_ONLY as TOKENIZE_RUNTIME_ONLY

REPO = Path(__file__).resolve().parents[1]


def test_runtime_only_tuples_are_the_marked_fields() -> None:
    marked = set(runtime_only_keys(Params))
    assert marked == {"tokenize.workers", "pretrain.trainer.threads", "pretrain.resume", "pretrain.checkpoint_dir"}
    assert {f"tokenize.{k}" for k in TOKENIZE_RUNTIME_ONLY} | {f"pretrain.{k}" for k in PRETRAIN_RUNTIME_ONLY} \
        == marked


def test_dvc_params_lists_leave_out_exactly_the_runtime_only_keys() -> None:
    """No stage lists a runtime-only key, neither by name nor inside a whole section it lists."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    marked = runtime_only_keys(Params)
    for name, stage in stages.items():
        for entry in stage.get("params", []):
            assert isinstance(entry, str), f"{name}: params from another file: {entry}"
            for key in marked:
                assert not (key == entry or key.startswith(entry + ".")), \
                    f"dvc.yaml: stage {name} lists {entry}, which has the runtime-only {key}: it would rerun"


def test_checkpoint_fingerprint_leaves_out_the_runtime_only_trainer_keys() -> None:
    from elmo.train.fingerprint import trainer_fingerprint

    t = TrainerParams()
    fp = trainer_fingerprint(t)
    assert set(fp) == set(TrainerParams.model_fields) - {"threads", "devices"}  # devices: recorded as `world`
    assert trainer_fingerprint(t.model_copy(update={"threads": 7})) == fp
    assert trainer_fingerprint(t.model_copy(update={"precision": "bf16-mixed"})) != fp
