"""The MLflow model registry as the registry and rollback use it: versions, their tags, the alias.

Tags every version carries (values are strings; JSON where noted):

=====================  ============================================================
``git.commit``         HEAD when the version was registered (the code that made it)
``git.dirty``          "true" if tracked code files differed from that commit
``dvc.stage``          the dvc.lock stage that wrote the model
``dvc.model_md5``      dvc.lock md5 of the model directory (identity of the version)
``dvc.outs``           JSON {path: md5}: the stage's outs in dvc.lock
``dvc.deps``           JSON {path: md5}: the stage's deps (data, upstream models, code)
``dvc.data``           JSON {path: md5}: those deps that are outputs of other stages
``dvc.params``         JSON of the params values dvc.lock recorded for the stage
``dvc.params_md5``     md5 of that JSON
``metric.<key>``       every number in the stage's metrics file (dotted keys)
``elmo.metric``        the deciding metric's key; ``elmo.metric_value`` its value
``ended_by``           how the model's training ended (steps, epochs, early_stop, clock), if its metrics say
``champion.previous``  set when the alias moves here: the version it moved from ("none")
``champion.reason``    why it moved (promotion or rollback); ``champion.moved_at`` when
=====================  ============================================================

The registered model keeps ``champion.history``: JSON list of every move (from, to, reason, time).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

from elmo.errors import StageError

HISTORY_TAG = "champion.history"
HISTORY_KEEP = 200


@dataclass(frozen=True)
class Version:
    name: str
    version: int
    tags: dict[str, str]
    aliases: tuple[str, ...]
    created_ms: int
    run_id: str | None
    source: str

    def json_tag(self, key: str) -> dict[str, Any]:
        raw = self.tags.get(key)
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    def metric(self, key: str) -> float | None:
        raw = self.tags.get(f"metric.{key}")
        try:
            return float(raw) if raw is not None else None
        except ValueError:
            return None

    @property
    def model_md5(self) -> str | None:
        return self.tags.get("dvc.model_md5")


def _version(mv) -> Version:
    return Version(name=mv.name, version=int(mv.version), tags=dict(mv.tags or {}),
                   aliases=tuple(getattr(mv, "aliases", None) or ()),
                   created_ms=int(mv.creation_timestamp or 0), run_id=mv.run_id, source=mv.source or "")


def _is_missing(err: Exception) -> bool:
    return getattr(err, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def versions(client, name: str) -> list[Version]:
    """Every version of ``name``, oldest first ([] if the model is not registered yet)."""
    found = client.search_model_versions(f"name = '{name}'")
    return sorted((_version(mv) for mv in found), key=lambda v: v.version)


def get(client, name: str, version: int) -> Version | None:
    try:
        return _version(client.get_model_version(name, str(version)))
    except MlflowException as err:
        if _is_missing(err):
            return None
        raise


def by_alias(client, name: str, alias: str) -> Version | None:
    try:
        return _version(client.get_model_version_by_alias(name, alias))
    except MlflowException as err:
        if _is_missing(err) or "alias" in str(err).lower():
            return None
        raise


def find_by_model_md5(client, name: str, md5: str) -> Version | None:
    """The newest version whose model directory had exactly this dvc.lock hash."""
    matches = [v for v in versions(client, name) if v.model_md5 == md5]
    return matches[-1] if matches else None


def register(client, name: str, model_uri: str, tags: dict[str, str], description: str) -> Version:
    """A new version of ``name`` (created on first use) from a logged model, tagged, READY."""
    mv = mlflow.register_model(model_uri, name, tags=tags, await_registration_for=300)
    if getattr(mv, "status", "READY") != "READY":
        raise StageError(f"MLflow could not register {name} v{mv.version}: {mv.status} {mv.status_message}")
    client.update_model_version(name, mv.version, description=description)
    return _version(client.get_model_version(name, mv.version))


def history(client, name: str) -> list[dict[str, Any]]:
    try:
        raw = (client.get_registered_model(name).tags or {}).get(HISTORY_TAG, "[]")
        value = json.loads(raw)
    except Exception:  # a missing model or a hand-edited tag: no history
        return []
    return value if isinstance(value, list) else []


def move_alias(client, name: str, alias: str, version: int, reason: str) -> int | None:
    """Point ``alias`` at ``version``; record the move on the version and in the model's history.

    Returns the version the alias pointed at before (None if it did not exist).
    """
    previous = by_alias(client, name, alias)
    prev_version = previous.version if previous else None
    if prev_version == version:
        return prev_version
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    client.set_model_version_tag(name, str(version), "champion.previous",
                                 str(prev_version) if prev_version is not None else "none")
    client.set_model_version_tag(name, str(version), "champion.reason", reason)
    client.set_model_version_tag(name, str(version), "champion.moved_at", now)
    client.set_registered_model_alias(name, alias, str(version))
    moves = history(client, name)
    moves.append({"alias": alias, "from": prev_version, "to": version, "reason": reason, "at": now})
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(moves[-HISTORY_KEEP:], ensure_ascii=False))
    return prev_version
