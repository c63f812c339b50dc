"""What a finetune run writes, in named steps: the main model, the metrics, the comparison
table (JSON and Markdown), the plots, and the same files on the run's tracker (MLflow).

Every file is written atomically (elmo/io.py); ``write_outputs`` is the order the stage uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elmo.budget import summary
from elmo.io import atomic_path, atomic_write_json, atomic_write_text
from elmo.params.finetune import PREDICTIONS_FILE
from elmo.plots import confusion_png, curves_png, write_csv
from elmo.task.classifier import save_classifier
from elmo.task.experiment import MAIN, TaskSplits, Trained
from elmo.task.variants import BASELINE


@dataclass(frozen=True)
class OutputOptions:
    """Where a finetune run writes (absolute paths: ``finetune.out_dir``, ``metrics``, ``comparison``,
    ``comparison_table``, ``plots_dir``) and what its files name: the task, the main model's biLM mode,
    ``out_name`` (``out_dir`` as params name it) and ``max_tokens`` (saved with the classifier)."""

    task: str
    bilm_mode: str
    out_name: str
    max_tokens: int
    out_dir: Path
    metrics: Path
    comparison: Path
    comparison_table: Path
    plots_dir: Path


@dataclass
class FinetuneRun:
    """What the steps of elmo/task/experiment.py leave for the outputs: the data step, the text
    pipeline, the main model's layer precision, the layer cache's seconds, the adapted biLM (or None),
    how each training ended, and the tracker."""

    data: TaskSplits
    pipeline: Any
    layer_dtype: str
    cache_seconds: float
    adapted: Any  # elmo.task.adapt.AdaptResult | None
    ended_by: dict[str, str]
    tracker: Any


def write_outputs(run: FinetuneRun, result: dict[str, Any], opts: OutputOptions) -> None:
    save_main_model(run, result, opts)
    write_metrics(run, result, opts)
    write_comparison(run, result, opts)
    write_plots(run, result, opts)
    track(run, result, opts)


def save_main_model(run: FinetuneRun, result: dict[str, Any], opts: OutputOptions) -> None:
    """The main model (finetune.out_dir): the classifier, its biLM and, as an ensemble, its TF-IDF half."""
    trained: Trained = result["main"]
    main, dev, ens = trained.fit, result["main_dev"], result["ensemble"]
    save_classifier(opts.out_dir, model=trained.model, labels=run.data.labels, words=run.data.words,
                    pipeline=run.pipeline, max_tokens=opts.max_tokens, bilm_dir=trained.bilm_dir,
                    layer_dtype=run.layer_dtype, tfidf=ens["tfidf"] if ens else None,
                    ensemble=ens["ensemble"].to_dict() if ens else None,
                    meta={"task": opts.task, "bilm_mode": opts.bilm_mode,  # what the model is: no run id, no time
                          "dev_macro_f1": dev["macro_f1"], "best_epoch": main.best_epoch,
                          "heldout_macro_f1": ens["heldout_macro_f1"] if ens else main.best_heldout["macro_f1"],
                          "elmo_alone_dev_macro_f1": trained.dev["macro_f1"]})


def metrics_doc(run: FinetuneRun, result: dict[str, Any], opts: OutputOptions) -> dict[str, Any]:
    """metrics/finetune.json: the main model on dev, what it was selected on, time, data counts."""
    y = run.data.y
    trained: Trained = result["main"]
    main, dev, ens = trained.fit, result["main_dev"], result["ensemble"]
    base = next((r for r in result["comparison"] if r["name"] == BASELINE), None)
    epochs = len(main.history)
    metrics = {
        "macro_f1": dev["macro_f1"], "accuracy": dev["accuracy"], "per_class": dev["per_class"],
        "n_dev": dev["n"], "n_train": len(y["fit"]) + len(y["heldout"]),
        "n_fit": len(y["fit"]), "n_heldout": len(y["heldout"]), "labels": run.data.labels,
        "bilm_mode": opts.bilm_mode,
        "heldout_macro_f1": ens["heldout_macro_f1"] if ens else main.best_heldout["macro_f1"],
        "ensemble": {**ens["ensemble"].to_dict(), "weights": ens["weights"]} if ens else None,
        "elmo_alone": {"macro_f1": trained.dev["macro_f1"], "accuracy": trained.dev["accuracy"],
                       "heldout_macro_f1": main.best_heldout["macro_f1"]},
        "best_epoch": main.best_epoch, "epochs": epochs,
        # how the main model's training ended; "clock" if a clock ended anything this run trained
        "ended_by": ended_by(run), "ended_by_each": dict(run.ended_by),
        "train_seconds": main.seconds, "seconds_per_epoch": main.seconds / max(epochs, 1),
        "bilm_layers_seconds": run.cache_seconds, "seconds_total": result["seconds_total"],
        "adapt": run.adapted.info | {"reused": run.adapted.reused} if run.adapted is not None else None,
        "data": result["data"],
    }
    if base is not None:
        metrics["tfidf_lr_macro_f1"] = base["macro_f1"]
        metrics["beats_tfidf_lr"] = dev["macro_f1"] > base["macro_f1"]
    return metrics


def ended_by(run: FinetuneRun) -> str:
    """The run's one word (elmo/budget.py): ``clock`` when a wall clock ended the adaptation or any
    task model (the metrics then depend on this machine's speed), else how the main model ended."""
    return summary(run.ended_by, MAIN)


def write_metrics(run: FinetuneRun, result: dict[str, Any], opts: OutputOptions) -> None:
    atomic_write_json(opts.metrics, metrics_doc(run, result, opts))


def write_comparison(run: FinetuneRun, result: dict[str, Any], opts: OutputOptions) -> None:
    """metrics/finetune_comparison.json and its Markdown table (what the README shows)."""
    main_f1 = result["main_dev"]["macro_f1"]
    table = [{k: v for k, v in r.items() if k != "history"} for r in result["comparison"]]
    atomic_write_json(opts.comparison, {"main_macro_f1": main_f1, "rows": table})
    atomic_write_text(opts.comparison_table,
                      comparison_markdown(table, main_f1, opts.out_name,
                                          run.adapted.info if run.adapted is not None else None))


def dev_predictions(run: FinetuneRun, result: dict[str, Any]) -> list[dict[str, str]]:
    """The main model's prediction of each dev record, in the dev file's order, with the record's text
    as in the file: what the served model must reproduce exactly (register's served = measured check,
    elmo/registry/served.py); its (actual, predicted) pairs are the confusion matrix of the metrics."""
    ens = result["ensemble"]
    probs = ens["dev_probs"] if ens else result["main"].dev_probs
    return [{"text": r.raw if r.raw is not None else r.text, "actual": r.label, "predicted": run.data.labels[int(k)]}
            for r, k in zip(run.data.dev_recs, probs.argmax(axis=1))]


def write_plots(run: FinetuneRun, result: dict[str, Any], opts: OutputOptions) -> None:
    """plots/finetune/<task>: the main model's history, one held-out curve per compared model, the dev
    predictions (DVC's confusion plot), and the curves and the confusion matrix as PNG images."""
    labels = run.data.labels
    dev = result["main_dev"]
    plots = opts.plots_dir
    write_csv(plots / "history.csv", result["main"].fit.history)
    with atomic_path(plots / "compare") as tmp:  # one curve per compared task model
        tmp.mkdir()
        for r in result["comparison"]:
            if r.get("history"):
                write_csv(tmp / f"{r['name']}.csv", r["history"], ["epoch", "heldout_macro_f1"])
    curves = {"main": result["main"].fit.history,
              **{r["name"]: r["history"] for r in result["comparison"] if r.get("history")}}
    curves_png(plots / "history.png", curves, "epoch", "heldout_macro_f1", f"{opts.task}: held-out macro-F1")
    cm = dev["confusion"]["matrix"]
    write_csv(plots / PREDICTIONS_FILE, dev_predictions(run, result), ["text", "actual", "predicted"])
    confusion_png(plots / "confusion.png", cm, labels,
                  f"{opts.task} dev: macro-F1 {dev['macro_f1']:.4f}, accuracy {dev['accuracy']:.4f}")


def track(run: FinetuneRun, result: dict[str, Any], opts: OutputOptions) -> None:
    """The run's final metrics and the files above, on the tracker."""
    dev = result["main_dev"]
    run.tracker.set_tags({"ended_by": ended_by(run)})
    run.tracker.log_metrics({"macro_f1": dev["macro_f1"], "accuracy": dev["accuracy"],
                             "best_epoch": result["main"].fit.best_epoch, "bilm_layers_seconds": run.cache_seconds,
                             **{f"f1.{lab}": v["f1"] for lab, v in dev["per_class"].items()},
                             **{f"compare.{r['name']}.macro_f1": r["macro_f1"] for r in result["comparison"]}})
    for path in (opts.metrics, opts.comparison, opts.comparison_table):
        run.tracker.log_artifact(path, artifact_path="metrics")
    run.tracker.log_artifacts(opts.plots_dir, artifact_path="plots")


def report(run: FinetuneRun, result: dict[str, Any], opts: OutputOptions) -> dict[str, Any]:
    """The stage's JSON report (stdout of `elmo finetune`)."""
    main: Trained = result["main"]
    return {"bilm_mode": opts.bilm_mode, "macro_f1": result["main_dev"]["macro_f1"],
            "accuracy": result["main_dev"]["accuracy"], "best_epoch": main.fit.best_epoch, "ended_by": ended_by(run),
            "comparison": {r["name"]: round(r["macro_f1"], 4) for r in result["comparison"]},
            "seconds_total": round(result["seconds_total"], 1)}


def comparison_markdown(rows: list[dict], main_f1: float, out_dir: str, adapt: dict | None = None) -> str:
    lines = ["| model | what it is | dev macro-F1 | dev accuracy | held-out macro-F1 | best epoch | seconds |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        name = r["name"] if r["name"] == MAIN else (f"**{r['name']}** (main)" if r.get("is_main") else r["name"])
        held = f"{r['heldout_macro_f1']:.4f}" if r.get("heldout_macro_f1") is not None else "-"
        lines.append(f"| {name} | {r['description']} | {r['macro_f1']:.4f} | {r['accuracy']:.4f} | {held} | "
                     f"{r['best_epoch'] if r['best_epoch'] is not None else '-'} | {r['seconds']:.0f} |")
    text = "\n".join(lines) + f"\n\nMain model ({out_dir}): dev macro-F1 {main_f1:.4f}.\n"
    if adapt is not None:
        took = (f"in {adapt['seconds']:.0f} s ({adapt['tokens_per_s']:,.0f} tokens/s)" if "seconds" in adapt
                else "(reused from an earlier run)")
        text += (f"The adapted biLM (shared by the adapted rows, not in their seconds): {adapt['steps']} steps, "
                 f"{adapt['tokens']:,} tokens {took}; "
                 f"held-out task-text perplexity {adapt['heldout_ppl_before']:.1f} -> "
                 f"{adapt['heldout_ppl_after']:.1f}; {len(adapt['chars_added'])} characters added.\n")
    return text
