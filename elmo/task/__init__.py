"""Text classification on top of ELMo (KLUE YNAT by default).

* :mod:`elmo.task.data` — labeled datasets (JSON array / JSON lines / CSV), checked, counted skips,
* :mod:`elmo.task.words` — the task's own word vocabulary,
* :mod:`elmo.task.model` — :class:`TaskModel` (ELMo mix ⊕ word embedding → BiLSTM/GRU → pooling → linear),
* :mod:`elmo.task.loop` — :class:`TrainLoop`, the one training loop (step, budget, ended_by) of adapt and train,
* :mod:`elmo.task.train` — batches, ``fit``: epochs, early stopping on held-out macro-F1,
* :mod:`elmo.task.metrics` — macro-F1 / accuracy / per-class, equal to scikit-learn's,
* :mod:`elmo.task.baseline` — TF-IDF + logistic regression,
* :mod:`elmo.task.variants` — the ablations trained in the same run,
* :mod:`elmo.task.inputs` — the task's records and tokens, read through the biLM's text pipeline,
* :mod:`elmo.task.experiment` — one finetune run's steps (data, biLMs, cache, train, ensemble, table),
* :mod:`elmo.task.outputs` — what the run writes,
* :mod:`elmo.task.classifier` — :class:`Classifier`: ``Classifier.load(dir).predict(texts)``,
* (plots: :mod:`elmo.plots`, shared with pretrain — CSVs for ``dvc plots`` and the same as PNG.)

Importing this package is cheap; ``Classifier`` is imported on first use.
"""


def __getattr__(name: str):
    if name == "Classifier":
        from elmo.task.classifier import Classifier

        return Classifier
    raise AttributeError(f"module 'elmo.task' has no attribute {name!r}")


__all__ = ["Classifier"]
