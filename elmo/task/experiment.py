"""One finetune run: the main task model, the comparisons, and every output they write.

Called by the finetune stage (elmo/stages/finetune.py) after the data is read and tokenized; the
MLflow run is already open (elmo/tracking.py), so metrics are logged per epoch with ``mlflow``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from elmo.io import atomic_path, atomic_write_json, atomic_write_text
from elmo.task.model import TaskConfig, TaskModel
from elmo.task.train import FitResult, TaskData, fit
from elmo.task.variants import BASELINE, BASELINE_DESCRIPTION, VARIANTS, variant_params
from elmo.task.words import TaskWords

MAIN = "main"


class Experiment:
    def __init__(self, params, root: Path, labels: list[str], train_recs, train_tok, dev_recs, dev_tok, tokenizer,
                 bilm_dir: Path | None, log: Callable[[str], None] = print) -> None:
        self.p, self.f, self.root, self.labels = params, params.finetune, Path(root), labels
        self.train_recs, self.dev_recs = train_recs, dev_recs
        self.train_tok, self.dev_tok = train_tok, dev_tok
        self.tokenizer, self.bilm_dir, self.log = tokenizer, bilm_dir, log
        self.words = TaskWords.build(train_tok, self.f.model.word_min_count)
        index = {lab: i for i, lab in enumerate(labels)}
        self.y_train = np.array([index[r.label] for r in train_recs], dtype=np.int64)
        self.y_dev = np.array([index[r.label] for r in dev_recs], dtype=np.int64)
        self.elmo = None
        self.caches: dict[str, Any] = {}
        self.cache_seconds = 0.0
        self.models: dict[str, TaskModel] = {}

    # ------------------------------------------------------------------ inputs
    def prepare_elmo(self) -> None:
        """Load the frozen biLM and compute (or read) its layers for train and dev once."""
        from elmo.embed.cache import cached_layers
        from elmo.embed.elmo import Elmo

        if self.elmo is not None or self.bilm_dir is None:
            return
        t0 = time.perf_counter()
        self.elmo = Elmo.load(self.bilm_dir, tokenizer=self.tokenizer, max_batch_tokens=self.f.embed_batch_tokens)
        for split, toks in (("train", self.train_tok), ("dev", self.dev_tok)):
            cache = cached_layers(self.elmo, toks, self.root / self.f.cache_dir, model_dir=self.bilm_dir,
                                  dtype=self.f.cache_dtype, desc=f"biLM layers ({split})")
            self.caches[split] = cache
            self.log(f"biLM layers for {split}: {'read from' if cache.hit else 'computed into'} {cache.path}")
        self.cache_seconds = time.perf_counter() - t0

    def data(self, use_elmo: bool) -> tuple[TaskData, TaskData]:
        if use_elmo:
            self.prepare_elmo()
        tr = TaskData([self.words.ids(t) for t in self.train_tok], self.y_train,
                      self.caches.get("train") if use_elmo else None)
        dv = TaskData([self.words.ids(t) for t in self.dev_tok], self.y_dev,
                      self.caches.get("dev") if use_elmo else None)
        return tr, dv

    def task_config(self, mp) -> TaskConfig:
        return TaskConfig(
            n_classes=len(self.labels), vocab_size=len(self.words),
            elmo_layers=self.elmo.n_layers if mp.use_elmo else 0, elmo_dim=self.elmo.dim if mp.use_elmo else 0,
            use_elmo=mp.use_elmo, elmo_gamma=mp.elmo_gamma, elmo_layer_norm=mp.elmo_layer_norm,
            elmo_output_mix=mp.elmo_output_mix, elmo_dropout=mp.elmo_dropout, word_dim=mp.word_dim, rnn=mp.rnn,
            hidden=mp.hidden, rnn_layers=mp.rnn_layers, pooling=mp.pooling, dropout=mp.dropout)

    # ------------------------------------------------------------------ training
    def train(self, name: str, mp) -> tuple[TaskModel, FitResult]:
        import mlflow
        import torch

        train, dev = self.data(mp.use_elmo)
        torch.manual_seed(self.p.seed)
        model = TaskModel(self.task_config(mp))
        tp = self.f.train
        prefix = "" if name == MAIN else f"compare.{name}."

        def on_epoch(row: dict) -> None:
            mlflow.log_metrics({f"{prefix}{k}": float(v) for k, v in row.items() if k != "epoch"}, step=row["epoch"])

        self.log(f"training {name}: {sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable "
                 f"parameters, {len(train)} train / {len(dev)} dev")
        result = fit(model, train, dev, self.labels, batch_size=tp.batch_size, lr=tp.lr, weight_decay=tp.weight_decay,
                     max_epochs=tp.max_epochs, patience=tp.patience, grad_clip=tp.grad_clip, seed=self.p.seed,
                     lr_decay=tp.lr_decay, max_seconds=tp.max_minutes * 60, name=name, on_epoch=on_epoch,
                     log=self.log)
        self.log(f"{name}: best dev macro-F1 {result.best_dev['macro_f1']:.4f} at epoch {result.best_epoch} "
                 f"({result.seconds:.0f}s)")
        return model, result

    def baseline(self) -> dict[str, Any]:
        from elmo.task.baseline import tfidf_lr

        self.log("training tfidf_lr (TF-IDF + logistic regression)")
        m = tfidf_lr([r.text for r in self.train_recs], [r.label for r in self.train_recs],
                     [r.text for r in self.dev_recs], [r.label for r in self.dev_recs], self.labels, self.f.tfidf,
                     seed=self.p.seed)
        self.log(f"tfidf_lr: dev macro-F1 {m['macro_f1']:.4f} ({m['seconds']:.0f}s, {m['features']:,} features)")
        return m

    def run_all(self) -> dict[str, Any]:
        main_model, main_fit = self.train(MAIN, self.f.model)
        self.models[MAIN] = main_model
        rows = []
        for name in self.f.compare:
            if name == BASELINE:
                m = self.baseline()
                rows.append({"name": name, "description": BASELINE_DESCRIPTION, "macro_f1": m["macro_f1"],
                             "accuracy": m["accuracy"], "best_epoch": None, "seconds": m["seconds"]})
                continue
            mp = variant_params(self.f.model, name)
            if mp == self.f.model:  # the main model is this variant: same config, same seed, same result
                fit_res, same = main_fit, True
            else:
                _, fit_res = self.train(name, mp)
                same = False
            rows.append({"name": name, "description": VARIANTS[name][0], "macro_f1": fit_res.best_dev["macro_f1"],
                         "accuracy": fit_res.best_dev["accuracy"], "best_epoch": fit_res.best_epoch,
                         "seconds": fit_res.seconds, "epochs": len(fit_res.history),
                         "out_of_time": fit_res.out_of_time, "is_main": same,
                         "history": [{"epoch": h["epoch"], "dev_macro_f1": h["dev_macro_f1"]}
                                     for h in fit_res.history]})
        if not any(r.get("is_main") for r in rows):  # the main model is none of the named variants
            rows.append({"name": MAIN, "description": "finetune.model as configured (models/ynat)",
                         "macro_f1": main_fit.best_dev["macro_f1"], "accuracy": main_fit.best_dev["accuracy"],
                         "best_epoch": main_fit.best_epoch, "seconds": main_fit.seconds, "is_main": True,
                         "history": [{"epoch": h["epoch"], "dev_macro_f1": h["dev_macro_f1"]}
                                     for h in main_fit.history]})
        return {"main": main_fit, "comparison": rows}

    # ------------------------------------------------------------------ outputs
    def write_outputs(self, result: dict[str, Any], run) -> None:
        import mlflow

        from elmo.task.classifier import save_classifier
        from elmo.task.plots import confusion_png, write_csv

        f, root = self.f, self.root
        main: FitResult = result["main"]
        model = self.models[MAIN]
        save_classifier(root / f.out_dir, model=model, labels=self.labels, words=self.words,
                        tokenizer_config=self.tokenizer.config(), max_tokens=f.max_tokens,
                        bilm_dir=self.bilm_dir if model.cfg.use_elmo else None,
                        meta={"task": f.task.name, "mlflow_run_id": run.info.run_id,
                              "dev_macro_f1": main.best_dev["macro_f1"], "best_epoch": main.best_epoch})
        rows = result["comparison"]
        base = next((r for r in rows if r["name"] == BASELINE), None)
        dev = main.best_dev
        epochs = len(main.history)
        metrics = {
            "macro_f1": dev["macro_f1"], "accuracy": dev["accuracy"], "per_class": dev["per_class"],
            "n_dev": dev["n"], "n_train": len(self.y_train), "labels": self.labels,
            "best_epoch": main.best_epoch, "epochs": epochs, "stopped_early": main.stopped_early,
            "out_of_time": main.out_of_time,
            "train_seconds": main.seconds, "seconds_per_epoch": main.seconds / max(epochs, 1),
            "bilm_layers_seconds": self.cache_seconds, "seconds_total": result["seconds_total"],
            "data": result["data"],
        }
        if base is not None:
            metrics["tfidf_lr_macro_f1"] = base["macro_f1"]
            metrics["beats_tfidf_lr"] = dev["macro_f1"] > base["macro_f1"]
        atomic_write_json(root / f.metrics, metrics)
        table = [{k: v for k, v in r.items() if k != "history"} for r in rows]
        atomic_write_json(root / f.comparison, {"main_macro_f1": dev["macro_f1"], "rows": table})
        md_path = root / f.comparison_table
        atomic_write_text(md_path, comparison_markdown(table, dev["macro_f1"]))
        plots = root / f.plots_dir
        write_csv(plots / "history.csv", main.history)
        with atomic_path(plots / "compare") as tmp:  # one curve per compared task model
            tmp.mkdir()
            for r in rows:
                if r.get("history"):
                    write_csv(tmp / f"{r['name']}.csv", r["history"], ["epoch", "dev_macro_f1"])
        cm = dev["confusion"]["matrix"]
        write_csv(plots / "dev_predictions.csv",
                  [{"actual": self.labels[i], "predicted": self.labels[j]}
                   for i in range(len(cm)) for j in range(len(cm)) for _ in range(cm[i][j])],
                  ["actual", "predicted"])
        confusion_png(plots / "confusion.png", cm, self.labels,
                      f"{f.task.name} dev: macro-F1 {dev['macro_f1']:.4f}, accuracy {dev['accuracy']:.4f}")
        mlflow.log_metrics({"macro_f1": dev["macro_f1"], "accuracy": dev["accuracy"],
                            "best_epoch": main.best_epoch, "bilm_layers_seconds": self.cache_seconds,
                            **{f"f1.{lab}": v["f1"] for lab, v in dev["per_class"].items()},
                            **{f"compare.{r['name']}.macro_f1": r["macro_f1"] for r in rows}})
        for path in (root / f.metrics, root / f.comparison, md_path):
            mlflow.log_artifact(str(path), artifact_path="metrics")
        mlflow.log_artifacts(str(plots), artifact_path="plots")

    def report(self, result: dict[str, Any]) -> dict[str, Any]:
        main: FitResult = result["main"]
        return {"out_dir": self.f.out_dir, "macro_f1": main.best_dev["macro_f1"],
                "accuracy": main.best_dev["accuracy"], "best_epoch": main.best_epoch,
                "comparison": {r["name"]: round(r["macro_f1"], 4) for r in result["comparison"]},
                "seconds_total": round(result["seconds_total"], 1)}


def comparison_markdown(rows: list[dict], main_f1: float) -> str:
    lines = ["| model | what it is | dev macro-F1 | dev accuracy | best epoch | seconds |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        name = r["name"] if r["name"] == MAIN else (f"**{r['name']}** (main)" if r.get("is_main") else r["name"])
        lines.append(f"| {name} | {r['description']} | {r['macro_f1']:.4f} | {r['accuracy']:.4f} | "
                     f"{r['best_epoch'] if r['best_epoch'] is not None else '-'} | {r['seconds']:.0f} |")
    return "\n".join(lines) + f"\n\nMain model (models/ynat): dev macro-F1 {main_f1:.4f}.\n"
