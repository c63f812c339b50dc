"""Prefect's cache for stage tasks, keyed by DVC's own hashes (so it never disagrees with DVC).

* Before a stage task runs, :class:`DvcStageCache` asks DVC for the stage's status. If DVC says
  the stage is up to date, the key is the hash of its dvc.lock entry (cmd, dependency and output
  hashes, param values); otherwise there is no key, and the task runs.
* After the task ran the stage, :func:`record` stores the task's result under the key of the
  *new* lock entry. The next run finds the workspace in exactly that state, computes the same key
  and is a cache hit: the stage is not run.

Consequences: a hit needs a clean ``dvc status`` for the stage; editing a param, a dependency, the
cmd, or touching/deleting an output changes or removes the key; checking out another commit's
data with ``dvc checkout`` finds that commit's record again.

Records live in the workspace (``.prefect/results/``, see :func:`result_storage`), beside the data
they describe, and are plain JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext
from prefect.logging import get_run_logger
from prefect.results import get_result_store

from elmo.dvcrepo import StageState, stage_state

RESULTS_DIR = ".prefect/results"


def result_storage(root: Path) -> Path:
    """Where a workspace's task results and cache records are kept (a local path)."""
    path = Path(root) / RESULTS_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class DvcStageCache(CachePolicy):
    """Cache key = hash of the stage's dvc.lock entry, only while ``dvc status`` is clean for it.

    The task's parameters must include ``root`` (workspace) and ``stage`` (DVC stage name).
    """

    def compute_key(self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        state = stage_state(inputs["root"], inputs["stage"])
        log = get_run_logger()
        if state.key:
            log.info("%s: dvc status is clean; cache key %s", state.name, state.key[len("dvc-stage-"):][:12])
        else:
            log.info("%s: dvc status reports changes: %s", state.name, state.describe())
        return state.key


def record(state: StageState, result: Any) -> bool:
    """Store ``result`` as the cached result of ``state`` (call inside the task, after the stage ran).

    Returns False (and stores nothing) when DVC still reports the stage changed, e.g. a stage that
    is ``always_changed``: such a stage is never a cache hit, as DVC always reruns it.
    """
    if not state.key:
        return False
    get_result_store().write(result, key=state.key)
    return True
