"""The thin adapter to MLflow tracking: every pretrain/finetune run is an MLflow run.

The tracking store is SQLite (``mlflow.tracking_uri`` in params.yaml, relative paths resolved
against the workspace root); artifacts go to ``mlflow.artifact_root``. Nothing else in the
library imports mlflow for tracking. The same store holds the model registry:
:func:`registry_client` is how elmo.registry reaches it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from elmo import gitrepo
from elmo.dicts import flatten
from elmo.errors import StageError
from elmo.io import sha256_dir
from elmo.log import get_logger
from elmo.params.mlflow import MlflowParams
from elmo.workspace_lock import stage_lock


def resolve_tracking_uri(p: MlflowParams, root: Path) -> str:
    uri = p.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        rel = uri[len("sqlite:///"):]
        return "sqlite:///" + str((Path(root) / rel).resolve())
    return uri


def configure(p: MlflowParams, root: Path):
    """Point mlflow at the project's store; returns the experiment id (created if missing)."""
    import mlflow

    mlflow.set_tracking_uri(resolve_tracking_uri(p, root))
    exp = mlflow.get_experiment_by_name(p.experiment)
    if exp is None:
        artifacts = (Path(root) / p.artifact_root).resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        return mlflow.create_experiment(p.experiment, artifact_location=artifacts.as_uri())
    return exp.experiment_id


def git_commit(root: Path) -> str | None:
    """HEAD's commit, or None (no repository, no commit, no git): a run is tracked either way.
    Through the project's one git helper, elmo.gitrepo."""
    try:
        return gitrepo.head(root)
    except StageError:
        return None


@contextlib.contextmanager
def start_run(p: MlflowParams, root: Path, *, stage: str, params: dict[str, Any] | None = None,
              run_name: str | None = None) -> Iterator[Any]:
    """Open an MLflow run tagged with the stage and git commit, logging ``params`` flattened.

    One run per stage per workspace at a time: a second ``elmo <stage>`` is refused while the
    first runs (``.elmo/<stage>.lock``), so their files never mix. Holding that lock proves that a
    run of this stage and workspace still marked RUNNING was killed (kill -9, power loss): it is
    marked KILLED before the new run opens. Ctrl-C and SIGTERM (KeyboardInterrupt, elmo.cli) end the
    run KILLED; any other error ends it FAILED.
    """
    import mlflow

    root = Path(root)
    with stage_lock(root, stage):
        exp_id = configure(p, root)
        workspace = str(root.resolve())
        mark_killed_runs(exp_id, stage, workspace, local_store=sqlite_path(p, root) is not None)
        tags = {"elmo.stage": stage, "elmo.workspace": workspace, "elmo.host": socket.gethostname(),
                "elmo.pid": str(os.getpid())}
        commit = git_commit(root)
        if commit:
            tags["mlflow.source.git.commit"] = commit
        with mlflow.start_run(experiment_id=exp_id, run_name=run_name or stage, tags=tags) as run:
            try:
                if params:
                    flat = {k: ("null" if v is None else str(v))[:6000] for k, v in flatten(params).items()}
                    items = list(flat.items())
                    for i in range(0, len(items), 100):
                        mlflow.log_params(dict(items[i:i + 100]))
                yield run
            except (KeyboardInterrupt, SystemExit):  # Ctrl-C, SIGTERM (or a library exiting on them)
                mlflow.end_run("KILLED")
                raise


def mark_killed_runs(experiment_id: str, stage: str, workspace: str, *, local_store: bool) -> list[str]:
    """Mark KILLED the runs of ``stage`` in ``workspace`` on this host still RUNNING; the caller holds
    the stage's lock, so their process is gone. Runs without these tags (older ones) count when the
    store is the workspace's own SQLite file. Returns their ids."""
    c = client()
    host = socket.gethostname()
    runs = c.search_runs([experiment_id], filter_string=f"tags.`elmo.stage` = '{stage}' and "
                         "attributes.status = 'RUNNING'", max_results=1000)
    killed = []
    for r in runs:
        tags = r.data.tags
        if "elmo.workspace" in tags:
            if tags["elmo.workspace"] != workspace or tags.get("elmo.host") != host:
                continue
        elif not local_store:
            continue
        c.set_tag(r.info.run_id, "elmo.ended", "marked KILLED by the next run: its process had died while RUNNING")
        c.set_terminated(r.info.run_id, "KILLED")
        killed.append(r.info.run_id)
    if killed:
        get_logger(stage).warning("%s: %d earlier run(s) left RUNNING by a killed process marked KILLED: %s",
                                  stage, len(killed), ", ".join(killed))
    return killed


def client(tracking_uri: str | None = None):
    """An ``MlflowClient`` (on ``tracking_uri``; default: the one :func:`configure` set)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri) if tracking_uri else MlflowClient()


def log_metric_rows(client, run_id: str, step: int, metrics: dict[str, float]) -> None:
    """One step's metrics into run ``run_id``, in batches of MLflow's maximum size (1000)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(key=k, value=float(v), timestamp=now, step=int(step)) for k, v in metrics.items()]
    for i in range(0, len(batch), 1000):
        client.log_batch(run_id, metrics=batch[i:i + 1000])


def log_results(metrics: dict[str, float], *, step: int, tags: dict[str, str], files: list[Path]) -> None:
    """The active run's final metrics (at ``step``), tags and artifact files."""
    import mlflow

    mlflow.log_metrics(metrics, step=step)
    mlflow.set_tags(tags)
    for f in files:
        mlflow.log_artifact(str(f))


class RunTracker:
    """An open MLflow run, as the library sees it: metrics and files go through this object, so
    library code (elmo/task/experiment.py) never imports mlflow. ``NullTracker`` logs nothing."""

    def __init__(self, run) -> None:
        self.run_id: str | None = run.info.run_id

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics(metrics, step=step)

    def set_tags(self, tags: dict[str, str]) -> None:
        import mlflow

        mlflow.set_tags(tags)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_artifacts(self, directory: Path, artifact_path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifacts(str(directory), artifact_path=artifact_path)


class NullTracker:
    """A tracker for library use without MLflow: every call does nothing."""

    run_id: str | None = None

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        pass

    def log_artifacts(self, directory: Path, artifact_path: str | None = None) -> None:
        pass


def download_artifacts(uri: str) -> Path:
    """A local copy of the artifacts behind an MLflow URI (``models:/name@alias``, ``runs:/id/path``).

    A URI that names nothing (no such model, version, alias or run; a malformed URI) is a
    StageError naming the URI and the store it was looked up in."""
    import mlflow
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except MlflowException as err:
        why = " ".join(str(err.message if hasattr(err, "message") else err).split())
        raise StageError(f"{uri}: {why} (MLflow store {mlflow.get_tracking_uri()})") from None


def sqlite_path(p: MlflowParams, root: Path) -> Path | None:
    """The SQLite file behind the tracking store (None for a server URI)."""
    uri = resolve_tracking_uri(p, root)
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def registry_client(p: MlflowParams, root: Path, *, create: bool = True):
    """An ``MlflowClient`` on the project's tracking store, which also holds the model registry.

    With ``create=False`` (read-only commands such as ``elmo rollback --list``) a missing SQLite
    store is an error instead of a new empty database.
    """
    from mlflow import MlflowClient

    db = sqlite_path(p, root)
    if not create and db is not None and not db.exists():
        raise FileNotFoundError(f"{db}: no MLflow registry here yet (mlflow.tracking_uri in params.yaml); "
                                "`elmo register` creates it")
    configure(p, root)
    uri = resolve_tracking_uri(p, root)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


# --- the run that trained a model ---------------------------------------------------------------
# A training stage (pretrain, finetune) tags its run, at the end, with the content hash of the model
# directory it wrote (elmo.io.sha256_dir); register finds the run by the same hash of the workspace's
# model directory and logs the registered model into it, so a version's source run is its training run.
MODEL_TAG = "elmo.model_sha256"


def tag_trained_model(model_dir: Path) -> str:
    """Tag the active run as the one that trained ``model_dir`` (call it after the model is written)."""
    import mlflow

    digest = sha256_dir(model_dir)
    mlflow.set_tag(MODEL_TAG, digest)
    return digest


def find_training_run(client, experiment_id: str, digest: str):
    """The newest FINISHED run of the experiment tagged as having trained a model with this hash, or None."""
    found = client.search_runs([experiment_id],
                               filter_string=f"tags.`{MODEL_TAG}` = '{digest}' and attributes.status = 'FINISHED'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    return found[0] if found else None


@contextlib.contextmanager
def reopened_run(client, run_id: str) -> Iterator[Any]:
    """Make a finished run the active one again (to log into it); on exit, whatever happened inside,
    it gets back the status and end time it had, so reopening never fails or lengthens a run."""
    import mlflow

    before = client.get_run(run_id).info
    run = mlflow.start_run(run_id=run_id)
    try:
        yield run
    finally:
        mlflow.end_run()
        client.set_terminated(run_id, status=before.status, end_time=before.end_time)
