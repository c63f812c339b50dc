"""What a finetune run writes, in named steps: the main model, the metrics, the comparison
table (JSON and Markdown), the plots, and the same files on the run's tracker (MLflow).

Every file is written atomically (elmo/io.py); ``write_outputs`` is the order the stage uses.
"""

from __future__ import annotations

from typing import Any

from elmo.io import atomic_path, atomic_write_json, atomic_write_text
from elmo.params.finetune import PREDICTIONS_FILE
from elmo.task.experiment import MAIN, Experiment, Trained
from elmo.task.variants import BASELINE


def write_outputs(exp: Experiment, result: dict[str, Any]) -> None:
    save_main_model(exp, result)
    write_metrics(exp, result)
    write_comparison(exp, result)
    write_plots(exp, result)
    track(exp, result)


def save_main_model(exp: Experiment, result: dict[str, Any]) -> None:
    """The main model (finetune.out_dir): the classifier, its biLM and, as an ensemble, its TF-IDF half."""
    from elmo.task.classifier import save_classifier

    f = exp.f
    trained: Trained = result["main"]
    main, dev, ens = trained.fit, result["main_dev"], result["ensemble"]
    save_classifier(exp.root / f.out_dir, model=trained.model, labels=exp.labels, words=exp.words,
                    pipeline=exp.pipeline, max_tokens=f.max_tokens, bilm_dir=trained.bilm_dir,
                    layer_dtype=exp.layer_dtype(trained), tfidf=ens["tfidf"] if ens else None,
                    ensemble=ens["ensemble"].to_dict() if ens else None,
                    meta={"task": f.task.name, "bilm_mode": f.bilm.mode,  # what the model is: no run id, no time
                          "dev_macro_f1": dev["macro_f1"], "best_epoch": main.best_epoch,
                          "heldout_macro_f1": ens["heldout_macro_f1"] if ens else main.best_heldout["macro_f1"],
                          "elmo_alone_dev_macro_f1": trained.dev["macro_f1"]})


def metrics_doc(exp: Experiment, result: dict[str, Any]) -> dict[str, Any]:
    """metrics/finetune.json: the main model on dev, what it was selected on, time, data counts."""
    f = exp.f
    trained: Trained = result["main"]
    main, dev, ens = trained.fit, result["main_dev"], result["ensemble"]
    base = next((r for r in result["comparison"] if r["name"] == BASELINE), None)
    epochs = len(main.history)
    metrics = {
        "macro_f1": dev["macro_f1"], "accuracy": dev["accuracy"], "per_class": dev["per_class"],
        "n_dev": dev["n"], "n_train": len(exp.y["fit"]) + len(exp.y["heldout"]),
        "n_fit": len(exp.y["fit"]), "n_heldout": len(exp.y["heldout"]), "labels": exp.labels,
        "bilm_mode": f.bilm.mode,
        "heldout_macro_f1": ens["heldout_macro_f1"] if ens else main.best_heldout["macro_f1"],
        "ensemble": {**ens["ensemble"].to_dict(), "weights": ens["weights"]} if ens else None,
        "elmo_alone": {"macro_f1": trained.dev["macro_f1"], "accuracy": trained.dev["accuracy"],
                       "heldout_macro_f1": main.best_heldout["macro_f1"]},
        "best_epoch": main.best_epoch, "epochs": epochs,
        # how the main model's training ended; "clock" if a clock ended anything this run trained
        "ended_by": ended_by(exp), "ended_by_each": dict(exp.ended_by),
        "train_seconds": main.seconds, "seconds_per_epoch": main.seconds / max(epochs, 1),
        "bilm_layers_seconds": exp.cache_seconds, "seconds_total": result["seconds_total"],
        "adapt": exp.adapted.info | {"reused": exp.adapted.reused} if exp.adapted is not None else None,
        "data": result["data"],
    }
    if base is not None:
        metrics["tfidf_lr_macro_f1"] = base["macro_f1"]
        metrics["beats_tfidf_lr"] = dev["macro_f1"] > base["macro_f1"]
    return metrics


def ended_by(exp: Experiment) -> str:
    """The run's one word (elmo/budget.py): ``clock`` when a wall clock ended the adaptation or any
    task model (the metrics then depend on this machine's speed), else how the main model ended."""
    from elmo.budget import summary

    return summary(exp.ended_by, MAIN)


def write_metrics(exp: Experiment, result: dict[str, Any]) -> None:
    atomic_write_json(exp.root / exp.f.metrics, metrics_doc(exp, result))


def write_comparison(exp: Experiment, result: dict[str, Any]) -> None:
    """metrics/finetune_comparison.json and its Markdown table (what the README shows)."""
    f, main_f1 = exp.f, result["main_dev"]["macro_f1"]
    table = [{k: v for k, v in r.items() if k != "history"} for r in result["comparison"]]
    atomic_write_json(exp.root / f.comparison, {"main_macro_f1": main_f1, "rows": table})
    atomic_write_text(exp.root / f.comparison_table,
                      comparison_markdown(table, main_f1, f.out_dir,
                                          exp.adapted.info if exp.adapted is not None else None))


def dev_predictions(exp: Experiment, result: dict[str, Any]) -> list[dict[str, str]]:
    """The main model's prediction of each dev record, in the dev file's order, with the record's text
    as in the file: what the served model must reproduce exactly (register's served = measured check,
    elmo/registry/served.py); its (actual, predicted) pairs are the confusion matrix of the metrics."""
    ens = result["ensemble"]
    probs = ens["dev_probs"] if ens else result["main"].dev_probs
    return [{"text": r.raw if r.raw is not None else r.text, "actual": r.label, "predicted": exp.labels[int(k)]}
            for r, k in zip(exp.dev_recs, probs.argmax(axis=1))]


def write_plots(exp: Experiment, result: dict[str, Any]) -> None:
    """plots/finetune/<task>: the main model's history, one held-out curve per compared model, the dev
    predictions (DVC's confusion plot), and the curves and the confusion matrix as PNG images."""
    from elmo.plots import confusion_png, curves_png, write_csv

    f, labels = exp.f, exp.labels
    dev = result["main_dev"]
    plots = exp.root / f.plots_dir
    write_csv(plots / "history.csv", result["main"].fit.history)
    with atomic_path(plots / "compare") as tmp:  # one curve per compared task model
        tmp.mkdir()
        for r in result["comparison"]:
            if r.get("history"):
                write_csv(tmp / f"{r['name']}.csv", r["history"], ["epoch", "heldout_macro_f1"])
    curves = {"main": result["main"].fit.history,
              **{r["name"]: r["history"] for r in result["comparison"] if r.get("history")}}
    curves_png(plots / "history.png", curves, "epoch", "heldout_macro_f1", f"{f.task.name}: held-out macro-F1")
    cm = dev["confusion"]["matrix"]
    write_csv(plots / PREDICTIONS_FILE, dev_predictions(exp, result), ["text", "actual", "predicted"])
    confusion_png(plots / "confusion.png", cm, labels,
                  f"{f.task.name} dev: macro-F1 {dev['macro_f1']:.4f}, accuracy {dev['accuracy']:.4f}")


def track(exp: Experiment, result: dict[str, Any]) -> None:
    """The run's final metrics and the files above, on the tracker."""
    f, dev = exp.f, result["main_dev"]
    exp.tracker.set_tags({"ended_by": ended_by(exp)})
    exp.tracker.log_metrics({"macro_f1": dev["macro_f1"], "accuracy": dev["accuracy"],
                             "best_epoch": result["main"].fit.best_epoch, "bilm_layers_seconds": exp.cache_seconds,
                             **{f"f1.{lab}": v["f1"] for lab, v in dev["per_class"].items()},
                             **{f"compare.{r['name']}.macro_f1": r["macro_f1"] for r in result["comparison"]}})
    for path in (exp.root / f.metrics, exp.root / f.comparison, exp.root / f.comparison_table):
        exp.tracker.log_artifact(path, artifact_path="metrics")
    exp.tracker.log_artifacts(exp.root / f.plots_dir, artifact_path="plots")


def report(exp: Experiment, result: dict[str, Any]) -> dict[str, Any]:
    """The stage's JSON report (stdout of `elmo finetune`)."""
    main: Trained = result["main"]
    return {"bilm_mode": exp.f.bilm.mode, "macro_f1": result["main_dev"]["macro_f1"],
            "accuracy": result["main_dev"]["accuracy"], "best_epoch": main.fit.best_epoch, "ended_by": ended_by(exp),
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
