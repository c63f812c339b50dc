"""register: the pipeline's models become MLflow model versions; `champion` moves only on improvement.

Runs after finetune (dvc.yaml). Reads ``register`` (which models, their DVC stages, metrics and
direction) and ``mlflow`` (the SQLite tracking store that also holds the registry) from params.yaml;
the work is done by :func:`elmo.registry.register.register_models`. Writes ``register.report``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from elmo.params import Params
from elmo.registry.register import register_models
from elmo.stages import stage_report


def run(params: Params, root: Path) -> dict[str, Any]:
    return stage_report("register", params, register_models(params.register, params.mlflow, Path(root)))
