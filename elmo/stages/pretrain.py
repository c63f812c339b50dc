"""Stage pretrain: train the ELMo biLM on the training arrays of the vocab stage.

Reads ``pretrain.vocab_dir`` (the vocabulary) and ``pretrain.arrays_dir`` (memory-mapped token
ids per split); trains the ``pretrain.preset`` model with Lightning (``pretrain.trainer``: CPU or
GPUs, one or several processes or nodes) and writes, each atomically:

* ``pretrain.out_dir`` — the biLM: config.json, weights.safetensors, vocab/ (elmo.model.files),
  with the weights of the better of the best-by-validation checkpoint and the last step,
* ``pretrain.metrics`` — valid and test perplexity per direction and averaged (full softmax),
  steps, how the run ended (``ended_by``: steps | epochs | clock), tokens, time, throughput, the
  selected checkpoint,
* ``pretrain.plots_dir`` — ``loss.csv`` (step, train_loss, lr, tokens_per_s) and
  ``perplexity.csv`` (step, valid_ppl, valid_ppl_fwd, valid_ppl_bwd) for ``dvc plots``,

and one MLflow run (params, per-step loss, lr, tokens/s, gradient norm per layer, validation
perplexity, final metrics, the drift report, the plot tables). Checkpoints go to
``pretrain.checkpoint_dir``; an interrupted run of the same config, data and code resumes there
(elmo.train.checkpoints).

``pretrain.init`` (elmo/train/init.py): ``scratch`` starts from random weights; ``previous``
continues from the biLM already in ``out_dir`` (DVC keeps it: ``persist``), with its vocabulary,
for ``pretrain.init_train``'s share of the preset's steps; scratch when there is none (logged, and
``init`` in the metrics says which was used and from what). Whenever a previous biLM is there, the
metrics' ``drift`` holds its perplexity and OOV rate on the valid sentences of the months it has
never seen, and the new biLM's on the same sentences (elmo/train/drift.py).

This module converts params into plain options once; the run's steps are elmo/train/run.py's.
"""

from __future__ import annotations

import time
from pathlib import Path

from elmo.params import Params
from elmo.stages import stage_report
from elmo.train.outputs import PretrainPaths
from elmo.train.run import PretrainOptions, pretrain


def options(params: Params) -> PretrainOptions:
    """The selected preset, the trainer, the seed, init and resume, as the library takes them."""
    p = params.pretrain
    preset = p.selected
    return PretrainOptions(preset=p.preset, model=preset.model, train=preset.train, trainer=p.trainer,
                           seed=params.seed, init=p.init, init_train=p.init_train, resume=p.resume)


def paths(params: Params, root: Path) -> PretrainPaths:
    """pretrain's paths resolved against the workspace root."""
    p = params.pretrain
    return PretrainPaths(vocab_dir=root / p.vocab_dir, arrays_dir=root / p.arrays_dir, petitions=root / p.petitions,
                         out_dir=root / p.out_dir, out_name=p.out_dir, checkpoint_dir=root / p.checkpoint_dir,
                         metrics=root / p.metrics, plots_dir=root / p.plots_dir)


def run(params: Params, root: Path) -> dict:
    """params -> options and paths -> elmo.train.run.pretrain -> the stage's report."""
    root = Path(root)
    started = time.time()
    where = paths(params, root)
    result = pretrain(options(params), where, params.mlflow, root)
    return stage_report("pretrain", params, {"checkpoints": result.checkpoints, "mlflow_run_id": result.run_id,
                                             "seconds": round(time.time() - started, 1), **result.metrics})
