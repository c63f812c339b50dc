"""Model versions: MLflow registry (with the ``champion`` alias), DVC hashes, rollback.

* :mod:`elmo.registry.register` — the register stage's work: log, check, register, tag, promote.
* :mod:`elmo.registry.rollback` — ``elmo rollback``: restore a version's data and model (git-tracked
  pipeline files + ``dvc checkout``) and point the alias at it, in steps: :mod:`~elmo.registry.targets`
  (what ``--to`` names), :mod:`~elmo.registry.history` (which commit made a version),
  :mod:`~elmo.registry.safety` (the refusals), :mod:`~elmo.registry.restore` (files, checkout, state).
* :mod:`elmo.registry.versions` — ``elmo rollback --list``: the versions, their metrics and commits.
* :mod:`elmo.registry.pyfunc` — the MLflow pyfunc serving a model directory through its loader.
* :mod:`elmo.registry.embedder` — the biLM's loader for serving (token lists -> ELMo vectors).
* :mod:`elmo.registry.store` — registry versions, tags and alias moves (MLflow client).
* :mod:`elmo.registry.champion` — the rule: the alias moves only to a strictly better version.
* :mod:`elmo.registry.lockfile` — reading dvc.lock (the git operations are :mod:`elmo.gitrepo`, the
  DVC ones :mod:`elmo.dvcrepo`, the project's one DVC adapter).

The submodules that reach the registry import mlflow at module level (dvc only lazily, inside
elmo.dvcrepo); this package's own __init__ imports nothing, and the CLI imports the registry only in
``elmo rollback``.
"""
