"""Where MLflow tracks runs and keeps the registry (used by pretrain, finetune and register)."""

from __future__ import annotations

from elmo.params.base import Section
from elmo.params.paths import WorkspacePath


class MlflowParams(Section):
    tracking_uri: str = "sqlite:///mlflow.db"  # relative sqlite paths are resolved against the workspace
    artifact_root: WorkspacePath = "mlartifacts"  # directory for run artifacts (an output: inside the workspace)
    experiment: str = "elmo-ko"
