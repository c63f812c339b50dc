"""What a pretraining run keeps and writes: the selected weights and their exact perplexities, then the
biLM directory, the DVC plot tables, the metrics file (each atomic) and the MLflow results."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from elmo.io import atomic_write_json
from elmo.plots import curves_png, write_csv
from elmo.tracking import log_results, tag_trained_model
from elmo.train.checkpoints import select_weights
from elmo.train.datamodule import valid_batches
from elmo.train.drift import mlflow_metrics
from elmo.train.evaluate import split_perplexity
from elmo.train.inputs import Inputs


@dataclass(frozen=True)
class PretrainPaths:
    """Where pretraining reads and writes (absolute). ``out_name``: ``out_dir`` as params name it
    (relative to the workspace), the name the metrics' ``init`` and messages use."""

    vocab_dir: Path
    arrays_dir: Path
    petitions: Path
    out_dir: Path
    out_name: str
    checkpoint_dir: Path
    metrics: Path
    plots_dir: Path


def final_metrics(model, inputs: Inputs, train, settings, best, global_step: int, sink) -> dict:
    """The weights to keep (best-by-validation checkpoint or the last step) and their exact
    valid/test perplexities; the last step's validation is added to the plot rows if missing."""
    subset = valid_batches(inputs.data["valid"], train.batch_tokens, max_batches=train.val_batches)
    selected, last_m = select_weights(model, best, global_step, subset, device=settings.device, bf16=settings.bf16)
    if not sink.valid_rows or sink.valid_rows[-1]["step"] != global_step:
        sink.valid_rows.append({"step": global_step, "valid_ppl": last_m["ppl"],
                                "valid_ppl_fwd": last_m["ppl_fwd"], "valid_ppl_bwd": last_m["ppl_bwd"]})
    final = {split: split_perplexity(model, inputs.data[split], split, batch_tokens=train.batch_tokens,
                                     max_tokens=train.eval_max_tokens, device=settings.device, bf16=settings.bf16)
             for split in ("valid", "test")}
    return {"selected": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in selected.items()},
            "valid": final["valid"], "test": final["test"]}


def write_outputs(paths: PretrainPaths, preset: str, model, metrics: dict, sink, fp: str, run_id: str | None,
                  vocab_dir: Path) -> None:
    """The biLM directory (with the vocabulary in ``vocab_dir``), the DVC plots tables and the metrics
    file (each atomic), and the MLflow results."""
    out_dir = paths.out_dir
    init = metrics["init"]
    model.cpu().save(out_dir, vocab_dir=vocab_dir, meta={
        "preset": preset, "fingerprint": fp, "steps": metrics["steps"], "selected": metrics["selected"],
        "valid_ppl": metrics["valid"]["ppl"], "test_ppl": metrics["test"]["ppl"], "months": metrics["months"],
        "init": {k: init[k] for k in ("used", "from_weights_sha256", "from_steps") if k in init},
    })  # no run id: what it is only
    plots_dir = paths.plots_dir
    write_csv(plots_dir / "loss.csv", sink.train_rows, ["step", "train_loss", "lr", "tokens_per_s"])
    write_csv(plots_dir / "perplexity.csv", sink.valid_rows, ["step", "valid_ppl", "valid_ppl_fwd", "valid_ppl_bwd"])
    # the same curves as images: `dvc plots show` renders them without a browser's chart library
    curves_png(plots_dir / "loss.png", {"train loss": sink.train_rows}, "step", "train_loss", "biLM training loss")
    curves_png(plots_dir / "perplexity.png", {d: [{"step": r["step"], "valid_ppl": r.get(k)} for r in sink.valid_rows]
                                              for d, k in (("both", "valid_ppl"), ("forward", "valid_ppl_fwd"),
                                                           ("backward", "valid_ppl_bwd"))},
               "step", "valid_ppl", "biLM validation perplexity")
    atomic_write_json(paths.metrics, metrics)
    if run_id is not None:
        flat = {f"final/{s}_{k}": v for s in ("valid", "test") for k, v in metrics[s].items()
                if isinstance(v, float) and math.isfinite(v)}
        flat.update(mlflow_metrics(metrics["drift"]))
        selected = metrics["selected"]
        log_results(flat, step=metrics["steps"],
                    tags={"elmo.fingerprint": fp, "elmo.preset": preset, "ended_by": metrics["ended_by"],
                          "elmo.selected": f"{selected['from']}@{selected['step']}", "elmo.init": init["used"]},
                    files=[plots_dir / "loss.csv", plots_dir / "perplexity.csv", plots_dir / "loss.png",
                           plots_dir / "perplexity.png", paths.metrics,
                           out_dir / "config.json"])
        tag_trained_model(out_dir)  # register logs the model into this run (its source run)
