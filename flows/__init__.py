"""Prefect orchestration of the DVC pipeline (see README, "Orchestration with Prefect").

* ``flows.pipeline``     the ``pipeline`` and ``crawl-and-retrain`` flows (one cached task per DVC stage)
* ``flows.tasks``        the stage task; ``flows.cache`` its DVC-hash cache policy
* ``flows.dvc_run``      runs dvc commands (stage order and per-stage hashes/status: ``elmo.dvcrepo``)
* ``flows.fanout``       the Dask fan-out of a stage's shards (tokenize)
* ``flows.summary``      the markdown summary and MLflow link artifacts of each run
* ``flows.deployments``  the scheduled deployments and how they are served
* ``flows.server``       the project's local Prefect server on 127.0.0.1
* ``python -m flows``    the command line (``run``, ``server``, ``serve``, ``deploy``)

Prefect keeps its home (database, settings, local results) in the project's ``.prefect/`` unless
``PREFECT_HOME`` is already set: that is decided here, before anything imports Prefect.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("PREFECT_HOME", str(PROJECT_ROOT / ".prefect"))
