"""Training the biLM with Lightning (the pretrain stage's engine).

* :mod:`elmo.train.run` — one pretraining run's steps on plain options (``pretrain``),
* :mod:`elmo.train.module` — :class:`BiLMTask`, the LightningModule (loss, perplexity, optimizer),
* :mod:`elmo.train.datamodule` — the train/valid/test loaders over elmo/data's arrays,
* :mod:`elmo.train.callbacks` — progress, throughput, gradient norms, MLflow and DVC plot logging,
* :mod:`elmo.train.checkpoints` — periodic/best checkpoints and resuming an interrupted run,
* :mod:`elmo.train.trainer` — the ``lightning.Trainer`` built from params (devices, DDP, precision).

(Synthetic batches of the loader's shape, for tests and benchmarks: tests/helpers/synthetic.py.)
"""
