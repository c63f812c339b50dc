"""Register the pipeline's models as MLflow model versions; move the alias only on improvement.

For each model declared in ``register.models``:

1. check that ``dvc.lock`` records its stage, that the model directory is one of that stage's
   outs and that the workspace copy matches the recorded hash (a model DVC did not record cannot
   be traced or restored, so it is refused), and read the deciding metric;
2. if a version with exactly that model hash exists, do nothing (re-running is harmless);
3. otherwise find the MLflow run that trained it (the newest FINISHED run tagged with the model
   directory's content hash, elmo/tracking.py ``MODEL_TAG``; none: refused), log the directory
   into that run as a pyfunc model (artifacts + code + pinned requirements), load it back and
   answer the example inputs, and, for a model with ``predictions_file`` (the classifier), score
   every text of it and get exactly the measured predictions (served = measured,
   elmo/registry/served.py) — only when every new model passes are they registered, so each
   version's source run is the pretrain or finetune run that made it, with that model's metrics;
4. tag the version (git commit, dvc.lock hashes of its data, params and model, its metrics, how its
   training ended) and compare it with the current champion; the alias moves only when the new one
   is strictly better, and the version it moved from is recorded on the new champion.
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow

from elmo import dvcrepo, gitrepo, tracking
from elmo.dicts import flatten
from elmo.errors import StageError
from elmo.io import atomic_write_json, sha256_dir
from elmo.log import get_logger
from elmo.params.mlflow import MlflowParams
from elmo.params.register import RegisteredModelParams, RegisterParams
from elmo.registry import champion, store
from elmo.registry.lockfile import Lock, LockedStage, read_lock
from elmo.registry.pyfunc import log_dir_model, smoke_test
from elmo.registry.served import check_served

say = get_logger("registry").info  # human messages to stderr (elmo/log.py); stdout is the report


def norm(path: str) -> str:
    return posixpath.normpath(path.replace("\\", "/"))


def read_metrics(root: Path, spec: RegisteredModelParams) -> tuple[dict[str, float], float]:
    path = root / spec.metrics_file
    if not path.exists():
        raise StageError(f"{path}: metrics file not found (written by stage {spec.dvc_stage!r})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise StageError(f"{path}: not valid JSON: {err}") from None
    node: Any = data
    for part in spec.metric.split("."):
        if not isinstance(node, dict) or part not in node:
            raise StageError(f"{path}: {spec.metric}: no such metric (register.models.*.metric)")
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, (int, float)) or not math.isfinite(node):
        raise StageError(f"{path}: {spec.metric}: expected a finite number, got {node!r}")
    return flatten(data, numbers_only=True), float(node)


def read_ended_by(root: Path, spec: RegisteredModelParams) -> str | None:
    """How the model's training ended (``ended_by`` in its metrics file: steps, epochs, early_stop,
    clock), or None for a metrics file without it."""
    value = json.loads((root / spec.metrics_file).read_text(encoding="utf-8")).get("ended_by")
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Candidate:
    key: str
    spec: RegisteredModelParams
    stage: LockedStage
    model_path: str
    model_md5: str
    metrics: dict[str, float]
    value: float
    ended_by: str | None = None


def _check_stage_files(root: Path, spec: RegisteredModelParams, stage: LockedStage, lock: Lock,
                       outs: dict[str, dvcrepo.OutState]) -> tuple[str, str]:
    model_path = norm(spec.model_dir)
    if model_path not in stage.outs:
        raise StageError(f"{lock.where}: stages.{stage.name}: {model_path} is not one of its outs "
                         f"({', '.join(sorted(stage.outs)) or 'none'}); check register.models.*.model_dir")
    state = outs.get(model_path)
    if state is None:
        raise StageError(f"{model_path}: not a cached DVC output of stage {stage.name!r} in dvc.yaml")
    if not state.exists:
        raise StageError(f"{root / model_path}: missing; run `dvc checkout {model_path}` or `dvc repro {stage.name}`")
    if state.changed or state.md5 != stage.outs[model_path]:
        raise StageError(f"{root / model_path}: differs from what {lock.where} records for stage {stage.name!r}; "
                         f"run `dvc repro {stage.name}` (or `dvc commit {stage.name}`) so DVC records it")
    metrics_path = norm(spec.metrics_file)
    if metrics_path in stage.outs:  # a cache: false metric is hashed in dvc.lock too
        digest = hashlib.md5((root / metrics_path).read_bytes()).hexdigest()
        if digest != stage.outs[metrics_path]:
            raise StageError(f"{root / metrics_path}: differs from what {lock.where} records for stage "
                             f"{stage.name!r}; run `dvc repro {stage.name}`")
    return model_path, stage.outs[model_path]


def collect(specs: dict[str, RegisteredModelParams], root: Path) -> tuple[Lock, list[Candidate]]:
    """Validate every declared model (``register.models``) against dvc.lock and the workspace before
    registering any."""
    lock = read_lock(root)
    for spec in specs.values():
        lock.stage(spec.dvc_stage)
    repo = dvcrepo.open_repo(root)
    try:
        outs = {o.path: o for o in dvcrepo.workspace_outputs(repo, {s.dvc_stage for s in specs.values()})}
    finally:
        repo.close()
    candidates = []
    for key, spec in specs.items():
        stage = lock.stage(spec.dvc_stage)
        model_path, md5 = _check_stage_files(root, spec, stage, lock, outs)
        metrics, value = read_metrics(root, spec)
        candidates.append(Candidate(key, spec, stage, model_path, md5, metrics, value, read_ended_by(root, spec)))
    return lock, candidates


def _state_paths(lock: Lock, report: str) -> set[str]:
    """Pipeline state recorded by hash in dvc.lock (not code): left out of ``git.dirty``."""
    return {"dvc.lock", norm(report)} | lock.params_files() | lock.out_paths()


def version_tags(c: Candidate, lock: Lock, commit: str | None, dirty: list[str]) -> dict[str, str]:
    data = {p: md5 for p, md5 in c.stage.deps.items() if lock.producer_of(p) not in (None, c.stage.name)}
    tags = {
        "git.commit": commit or "unknown",
        "git.dirty": "true" if dirty else "false",
        "dvc.stage": c.stage.name,
        "dvc.model_path": c.model_path,
        "dvc.model_md5": c.model_md5,
        "dvc.outs": json.dumps(c.stage.outs, sort_keys=True),
        "dvc.deps": json.dumps(c.stage.deps, sort_keys=True),
        "dvc.data": json.dumps(data, sort_keys=True),
        "dvc.params": json.dumps(c.stage.params, sort_keys=True, ensure_ascii=False, default=str),
        "dvc.params_md5": c.stage.params_md5(),
        "elmo.metric": c.spec.metric,
        "elmo.metric_value": repr(c.value),
        "elmo.higher_is_better": "true" if c.spec.higher_is_better else "false",
    }
    if dirty:
        tags["git.dirty_files"] = json.dumps(dirty[:200])
    if c.ended_by is not None:
        tags["ended_by"] = c.ended_by
    for k, v in list(c.metrics.items())[:500]:
        tags[f"metric.{k}"] = repr(v)
    return tags


def _keep_existing(client, alias: str, c: Candidate, existing: store.Version) -> dict[str, Any]:
    """The model is already a version: nothing to register (the alias only fills a gap)."""
    champ = store.by_alias(client, c.spec.name, alias)
    previous = champ.version if champ else None
    reason, promoted = f"already registered as v{existing.version}; nothing to do", False
    if champ is None:  # e.g. an earlier run stopped between registering and moving the alias
        reason = f"already registered as v{existing.version}; no {alias} yet, so it becomes {alias}"
        store.move_alias(client, c.spec.name, alias, existing.version, reason)
        champ, promoted = existing, True
    say(f"{c.spec.name}: {c.model_path} ({c.model_md5[:8]}) is {reason}")
    return entry(c, existing, new=False, promoted=promoted, champion=champ.version, previous=previous,
                 reason=reason)


def entry(c: Candidate, v: store.Version, *, new: bool, promoted: bool, champion: int | None,
          previous: int | None, reason: str) -> dict[str, Any]:
    """What the report (``register.report``, a DVC metrics file the pipeline summary shows) says of
    one model: the version registered or found, the champion after this run, whether it moved here
    and from which version (``previous_champion``: the champion before this run). No run ids: the
    registry has the version's source run, and the report stays the same for the same models."""
    return {"name": c.spec.name, "version": v.version, "new": new, "model_md5": c.model_md5,
            "metric": c.spec.metric, "value": c.value, "ended_by": c.ended_by,
            "promoted": promoted, "champion": champion, "previous_champion": previous, "reason": reason}


def training_runs(mlflow_params: MlflowParams, root: Path, client, pending: list[Candidate]) -> dict[str, str]:
    """{candidate key: id of the MLflow run that trained its model}; refuses a model without one."""
    experiment_id = tracking.configure(mlflow_params, root)
    found = {}
    for c in pending:
        digest = sha256_dir(root / c.model_path)
        run = tracking.find_training_run(client, experiment_id, digest)
        if run is None:
            raise StageError(f"{root / c.model_path}: no finished MLflow run of experiment "
                             f"{mlflow_params.experiment!r} trained this model (tag {tracking.MODEL_TAG}="
                             f"{digest[:12]}…), so its version would not lead back to its training; "
                             f"retrain it: dvc repro --force {c.stage.name}")
        found[c.key] = run.info.run_id
    return found


def _register_new(p: RegisterParams, mlflow_params: MlflowParams, root: Path, client, lock: Lock,
                  pending: list[Candidate], commit: str | None, dirty: list[str]) -> dict[str, Any]:
    """Log each pending model into the run that trained it and check it; then register every one
    and decide the alias."""
    runs = training_runs(mlflow_params, root, client, pending)  # every model has one, before anything is logged
    entries: dict[str, Any] = {}
    logged = {}
    for c in pending:
        say(f"{c.spec.name}: logging {c.model_path} as a pyfunc model into its training run {runs[c.key]} …")
        with tracking.reopened_run(client, runs[c.key]):
            mlflow.log_text((root / "dvc.lock").read_text(encoding="utf-8"), f"register/{c.spec.name}/dvc.lock")
            info = log_dir_model(name=c.spec.name, model_dir=root / c.model_path, loader=c.spec.loader,
                                 input_column=c.spec.input_column, input_type=c.spec.input_type,
                                 code_paths=[root / cp for cp in c.spec.code_paths],
                                 pip_requirements=p.pip_requirements)
        say(f"{c.spec.name}: loading it back and answering {len(c.spec.example)} example input(s) …")
        smoke_test(info.model_uri, c.spec.example, input_column=c.spec.input_column, input_type=c.spec.input_type)
        if c.spec.predictions_file:
            say(f"{c.spec.name}: served = measured: scoring {c.spec.predictions_file} through it …")
            check_served(info.model_uri, root / c.spec.predictions_file, input_column=c.spec.input_column)
        logged[c.key] = info
    for c in pending:  # every new model loaded and answered: now register them
        description = (f"{c.model_path} from dvc.lock stage {c.stage.name} (md5 {c.model_md5}); "
                       f"{c.spec.metric}={c.value:.6g}; code {gitrepo.short(commit)}"
                       f"{' +uncommitted changes' if dirty else ''}")
        v = store.register(client, c.spec.name, logged[c.key].model_uri, version_tags(c, lock, commit, dirty),
                           description)
        if v.run_id != runs[c.key]:
            raise StageError(f"MLflow registered {c.spec.name} v{v.version} with source run {v.run_id}, "
                             f"not its training run {runs[c.key]}")
        champ = store.by_alias(client, c.spec.name, p.alias)
        decision = champion.decide(
            c.spec.metric, c.value, v.version, higher_is_better=c.spec.higher_is_better,
            champion_version=champ.version if champ else None,
            champion_value=champ.metric(c.spec.metric) if champ else None)
        previous = champ.version if champ else None
        if decision.promote:
            previous = store.move_alias(client, c.spec.name, p.alias, v.version, decision.reason)
        say(f"{c.spec.name}: registered version {v.version} (source run {v.run_id}); {decision.reason}")
        entries[c.key] = entry(c, v, new=True, promoted=decision.promote,
                               champion=v.version if decision.promote else previous, previous=previous,
                               reason=decision.reason)
    return entries


def register_models(p: RegisterParams, mlflow_params: MlflowParams, root: Path) -> dict[str, Any]:
    """The register stage: returns (and writes to ``p.report``) what happened per model."""
    lock, candidates = collect(p.models, root)
    client = tracking.registry_client(mlflow_params, root)
    commit = gitrepo.head(root) if gitrepo.is_repo(root) else None
    dirty = gitrepo.dirty_files(root, exclude=_state_paths(lock, p.report)) if commit else []
    report: dict[str, Any] = {"alias": p.alias, "git_commit": commit, "models": {}}
    pending = []
    for c in candidates:
        existing = store.find_by_model_md5(client, c.spec.name, c.model_md5)
        if existing is None:
            pending.append(c)
        else:
            report["models"][c.key] = _keep_existing(client, p.alias, c, existing)
    if pending:
        report["models"].update(_register_new(p, mlflow_params, root, client, lock, pending, commit, dirty))
    report["models"] = {k: report["models"][k] for k in p.models}  # declared order
    atomic_write_json(root / p.report, report)
    return report
