"""One finetune run: the main task model, the comparisons, and every output they write.

Called by the finetune stage (elmo/stages/finetune.py) after the data is read and tokenized, with
the open MLflow run as a tracker (``elmo.tracking.RunTracker``: metrics per epoch, the outputs as
artifacts; this module never imports mlflow). Messages go to ``log`` (the ``elmo.finetune`` logger).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from elmo.errors import StageError
from elmo.log import get_logger
from elmo.task.metrics import probs_metrics
from elmo.task.model import BiLMTaskModel, TaskConfig, TaskModel
from elmo.task.train import FitResult, TaskData, fit, predict_proba
from elmo.task.variants import BASELINE, BASELINE_DESCRIPTION, UNFROZEN_MODES, VARIANTS, variant_mode, variant_params
from elmo.task.words import TaskWords

MAIN = "main"


@dataclass
class Trained:
    """One trained task model: its fit on the train split (selected on the held-out slice) and dev, once."""

    model: Any  # TaskModel or BiLMTaskModel
    fit: FitResult
    dev: dict[str, Any]  # classification_metrics on the whole dev set
    dev_probs: np.ndarray  # (N_dev, K): what dev was scored on (the ensemble reuses it)
    bilm_dir: Path | None  # the biLM it was trained with (its weights as trained: model.bilm for unfrozen)


def heldout_split(records, fraction: float, salt: str) -> np.ndarray:
    """(N,) bool: which train records form the held-out slice (a stable hash of id, or text without one)."""
    from elmo.stable_hash import unit_hash

    u = np.array([unit_hash(r.id if r.id is not None else r.text, salt) for r in records])
    mask = u < fraction
    if mask.all() or not mask.any():  # a tiny train split: keep one record on each side
        mask = np.zeros(len(records), dtype=bool)
        mask[int(np.argmin(u))] = True
    return mask


@dataclass
class TaskInputs:
    """The task data as the finetune stage hands it over: records and their token lists, per split."""

    labels: list[str]
    train_recs: list  # elmo.task.data.Record
    train_tok: list[list[str]]
    dev_recs: list
    dev_tok: list[list[str]]
    pipeline: Any  # the pretraining corpus's text pipeline (elmo.text.pipeline.TextPipeline)


class Experiment:
    """One finetune run's steps: the held-out split (here), :meth:`bilm_for` (which biLM a mode
    uses: pretrained, adapted, random), :meth:`train` (one task model), :meth:`tfidf`,
    :meth:`ensemble`, :meth:`run_all` (main model, ensemble, comparisons -> the table); the
    outputs are written by elmo/task/outputs.py."""

    def __init__(self, params, root: Path, inputs: TaskInputs, bilm_dir: Path | None, *,
                 tracker: Any = None, log: Callable[[str], None] | None = None) -> None:
        from elmo.tracking import NullTracker

        self.p, self.f, self.root, self.labels = params, params.finetune, Path(root), inputs.labels
        train_recs, train_tok, dev_recs = inputs.train_recs, inputs.train_tok, inputs.dev_recs
        if len(train_recs) < 2:
            raise StageError(f"{self.f.task.train_file}: {len(train_recs)} usable text(s); finetune needs at least 2 "
                             "(one for the held-out slice)")
        held = heldout_split(train_recs, self.f.heldout_fraction, self.f.heldout_salt)
        self.fit_recs = [r for r, h in zip(train_recs, held) if not h]
        self.held_recs = [r for r, h in zip(train_recs, held) if h]
        self.train_recs, self.dev_recs = train_recs, dev_recs
        self.splits = {"fit": [t for t, h in zip(train_tok, held) if not h],
                       "heldout": [t for t, h in zip(train_tok, held) if h], "dev": inputs.dev_tok}
        self.train_tok = train_tok
        self.pipeline, self.bilm_dir = inputs.pipeline, bilm_dir
        self.tracker = tracker if tracker is not None else NullTracker()
        self.log = log if log is not None else get_logger("finetune").info
        self.words = TaskWords.build(self.splits["fit"], self.f.model.word_min_count)
        index = {lab: i for i, lab in enumerate(self.labels)}
        self.y = {"fit": np.array([index[r.label] for r in self.fit_recs], dtype=np.int64),
                  "heldout": np.array([index[r.label] for r in self.held_recs], dtype=np.int64),
                  "dev": np.array([index[r.label] for r in dev_recs], dtype=np.int64)}
        self.caches: dict[tuple[str, str], Any] = {}
        self.cache_seconds = 0.0
        self.adapted: Any = None  # AdaptResult, once adapted
        self._tfidf: dict[str, Any] | None = None
        self.trained: dict[str, Trained] = {}
        self.ended_by: dict[str, str] = {}  # what trained -> how it ended (steps|epochs|early_stop|clock)
        self.log(f"model selection on a held-out slice of train: {len(self.fit_recs)} fit / {len(self.held_recs)} "
                 f"held-out texts (heldout_fraction {self.f.heldout_fraction}); dev ({len(dev_recs)}) is reported once")

    # ------------------------------------------------------------------ biLMs
    def bilm_for(self, mode: str) -> Path:
        """The biLM directory a mode uses: pretrained, adapted on the task text, or the random control."""
        if self.bilm_dir is None:
            raise StageError("finetune.bilm_dir: this run has no biLM (run `elmo pretrain` first)")
        if mode in ("frozen", "unfrozen"):
            return self.bilm_dir
        if mode in ("adapted", "adapted_unfrozen"):
            return self.adapt().path
        if mode == "random":
            from elmo.task.adapt import random_bilm

            return random_bilm(self.bilm_dir, self.root / self.f.cache_dir / "random_bilm", seed=self.p.seed)
        raise ValueError(f"unknown biLM mode {mode!r}")

    def adapt(self):
        from elmo.task.adapt import AdaptOptions, adapt_bilm

        if self.adapted is None:
            a = self.f.adapt
            texts = self.train_tok + (self.splits["dev"] if a.use_dev_texts else [])
            opts = AdaptOptions(max_steps=a.max_steps, max_minutes=a.max_minutes, batch_tokens=a.batch_tokens,
                                lr=a.lr, cut_frac=a.cut_frac, ratio=a.ratio, grad_clip=a.grad_clip,
                                heldout_sentences=a.heldout_sentences,
                                extend_chars_min_count=a.extend_chars_min_count, seed=self.p.seed)
            self.adapted = adapt_bilm(self.bilm_dir, texts, self.root / a.out_dir, opts, log=self.log)
            self.ended_by["adapt"] = self.adapted.info["ended_by"]
        return self.adapted

    def layers(self, bilm_dir: Path, split: str):
        """The frozen biLM's layers of one split (fit / heldout / dev), from the layer cache."""
        from elmo.embed.cache import cached_layers
        from elmo.embed.elmo import Elmo

        key = (str(bilm_dir), split)
        if key not in self.caches:
            t0 = time.perf_counter()
            elmo = Elmo.load(bilm_dir, pipeline=self.pipeline, max_batch_tokens=self.f.embed_batch_tokens)
            cache = cached_layers(elmo, self.splits[split], self.root / self.f.cache_dir, model_dir=bilm_dir,
                                  dtype=self.f.cache_dtype, desc=f"biLM layers ({split})")
            self.caches[key] = cache
            self.log(f"biLM layers for {split}: {'read from' if cache.hit else 'computed into'} {cache.path}")
            self.cache_seconds += time.perf_counter() - t0
        return self.caches[key]

    def layer_dtype(self, t: Trained) -> str:
        """The precision of the biLM layers ``t`` was trained on: the layer cache's for a frozen biLM;
        float32 when the biLM ran inside the model (unfrozen modes) or there is none."""
        frozen = t.bilm_dir is not None and not isinstance(t.model, BiLMTaskModel)
        return self.f.cache_dtype if frozen else "float32"

    def data(self, split: str, mode: str | None, bilm_dir: Path | None) -> TaskData:
        layers = self.layers(bilm_dir, split) if mode is not None and mode not in UNFROZEN_MODES else None
        toks = self.splits[split]
        return TaskData([self.words.ids(t) for t in toks], self.y[split], layers,
                        tokens=toks if mode in UNFROZEN_MODES else None)

    def task_config(self, mp, bilm_cfg) -> TaskConfig:
        return TaskConfig(
            n_classes=len(self.labels), vocab_size=len(self.words),
            elmo_layers=bilm_cfg.n_layers + 1 if mp.use_elmo else 0,
            elmo_dim=2 * bilm_cfg.projection_dim if mp.use_elmo else 0,
            use_elmo=mp.use_elmo, elmo_gamma=mp.elmo_gamma, elmo_layer_norm=mp.elmo_layer_norm,
            elmo_output_mix=mp.elmo_output_mix, elmo_dropout=mp.elmo_dropout, word_dim=mp.word_dim, rnn=mp.rnn,
            hidden=mp.hidden, rnn_layers=mp.rnn_layers, pooling=mp.pooling, dropout=mp.dropout)

    # ------------------------------------------------------------------ training
    def train(self, name: str, mp, mode: str | None) -> Trained:
        import torch

        from elmo.model import BiLM
        from elmo.model.files import read_config

        mode = mode if mp.use_elmo else None
        bilm_dir = self.bilm_for(mode) if mode is not None else None
        bilm_cfg = read_config(bilm_dir)["config"] if bilm_dir is not None else None
        train, held = self.data("fit", mode, bilm_dir), self.data("heldout", mode, bilm_dir)
        torch.manual_seed(self.p.seed)
        model = TaskModel(self.task_config(mp, bilm_cfg))
        tp, unfreeze = self.f.train, None
        options = dict(batch_size=tp.batch_size, lr=tp.lr, weight_decay=tp.weight_decay, max_epochs=tp.max_epochs,
                       patience=tp.patience, grad_clip=tp.grad_clip, seed=self.p.seed, lr_decay=tp.lr_decay,
                       max_seconds=tp.max_minutes * 60 if tp.max_minutes else None)
        if mode in UNFROZEN_MODES:
            from elmo.model import vocab_dir
            from elmo.train.schedule import UnfreezePlan, bilm_layer_groups
            from elmo.vocab import Vocabulary

            u = self.f.unfreeze
            model = BiLMTaskModel(model, BiLM.load(bilm_dir), Vocabulary.load(vocab_dir(bilm_dir)))
            unfreeze = UnfreezePlan(n_groups=len(bilm_layer_groups(model.bilm)), lr=u.lr, factor=u.factor,
                                    bilm_lr_scale=u.bilm_lr_scale, gradual=u.gradual)
            options.update(lr=u.lr, max_epochs=u.max_epochs, patience=u.patience,
                           max_seconds=u.max_minutes * 60 if u.max_minutes else None,
                           schedule="stlr", stlr_cut_frac=u.cut_frac, stlr_ratio=u.ratio)
        prefix = "" if name == MAIN else f"compare.{name}."

        def on_epoch(row: dict) -> None:
            self.tracker.log_metrics({f"{prefix}{k}": float(v) for k, v in row.items() if k != "epoch"},
                                     step=row["epoch"])

        self.log(f"training {name} (biLM: {mode or 'none'}): "
                 f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,} parameters, "
                 f"{len(train)} fit / {len(held)} held-out")
        result = fit(model, train, held, self.labels, name=name, unfreeze=unfreeze, on_epoch=on_epoch,
                     log=self.log, **options)
        self.ended_by[name] = result.ended_by
        dev_probs = predict_proba(model, self.data("dev", mode, bilm_dir))
        dev = probs_metrics(self.y["dev"], dev_probs, self.labels)
        self.log(f"{name}: best held-out macro-F1 {result.best_heldout['macro_f1']:.4f} at epoch {result.best_epoch}"
                 f" -> dev macro-F1 {dev['macro_f1']:.4f} ({result.seconds:.0f}s)")
        return Trained(model, result, dev, dev_probs, bilm_dir)

    def tfidf(self) -> dict[str, Any]:
        """TF-IDF + logistic regression on the fit split: the baseline row and the ensemble's sparse half (once)."""
        from elmo.task.baseline import tfidf_lr

        if self._tfidf is None:
            self.log("training tfidf_lr (TF-IDF + logistic regression)")
            m = tfidf_lr([r.text for r in self.fit_recs], [r.label for r in self.fit_recs],
                         [r.text for r in self.dev_recs], [r.label for r in self.dev_recs], self.labels,
                         self.f.tfidf, seed=self.p.seed)
            self.log(f"tfidf_lr: dev macro-F1 {m['macro_f1']:.4f} ({m['seconds']:.0f}s, {m['features']:,} features)")
            self._tfidf = m
        return self._tfidf

    def ensemble(self, main: Trained) -> dict[str, Any]:
        """The main model x TF-IDF: temperatures and weight on the held-out slice, then dev once."""
        from elmo.task.ensemble import select_ensemble

        tfidf = self.tfidf()["model"]
        mode = self.f.bilm.mode if main.model.cfg.use_elmo else None
        held = predict_proba(main.model, self.data("heldout", mode, main.bilm_dir))
        ens, scores = select_ensemble(held, tfidf.predict_proba([r.text for r in self.held_recs]), self.y["heldout"],
                                      self.labels, self.f.ensemble.weights)
        dev_p = ens.combine(main.dev_probs, tfidf.predict_proba([r.text for r in self.dev_recs]))
        dev = probs_metrics(self.y["dev"], dev_p, self.labels)

        held_f1 = max(s["heldout_macro_f1"] for s in scores)
        self.log(f"ensemble with tfidf_lr: weight {ens.weight} (temperatures {ens.t_elmo:.2f} / {ens.t_tfidf:.2f}), "
                 f"held-out macro-F1 {held_f1:.4f} -> dev macro-F1 {dev['macro_f1']:.4f}")
        return {"ensemble": ens, "tfidf": tfidf, "dev": dev, "dev_probs": dev_p, "heldout_macro_f1": held_f1,
                "weights": scores}

    def row(self, name: str, description: str, t: Trained, is_main: bool) -> dict[str, Any]:
        return {"name": name, "description": description, "macro_f1": t.dev["macro_f1"],
                "accuracy": t.dev["accuracy"], "heldout_macro_f1": t.fit.best_heldout["macro_f1"],
                "best_epoch": t.fit.best_epoch, "seconds": t.fit.seconds, "epochs": len(t.fit.history),
                "ended_by": t.fit.ended_by, "is_main": is_main,
                "history": [{"epoch": h["epoch"], "heldout_macro_f1": h["heldout_macro_f1"]} for h in t.fit.history]}

    def run_all(self) -> dict[str, Any]:
        main_mode = self.f.bilm.mode
        main = self.trained[MAIN] = self.train(MAIN, self.f.model, main_mode)
        ens = self.ensemble(main) if self.f.ensemble.with_tfidf else None
        rows = []
        for name in self.f.compare:
            if name == BASELINE:
                m = self.tfidf()
                rows.append({"name": name, "description": BASELINE_DESCRIPTION, "macro_f1": m["macro_f1"],
                             "accuracy": m["accuracy"], "heldout_macro_f1": None, "best_epoch": None,
                             "seconds": m["seconds"]})
                continue
            mp, mode = variant_params(self.f.model, name), variant_mode(name)
            same = mp == self.f.model and (mode == main_mode or not mp.use_elmo)
            t = main if same else self.train(name, mp, mode)  # same config, seed and data: the same model
            rows.append(self.row(name, VARIANTS[name][0], t, same and ens is None))
        if ens is not None:
            row = self.row(MAIN, f"the main model ({self.f.out_dir}): ELMo classifier (biLM {main_mode}) x tfidf_lr, "
                                 f"calibrated, weight {ens['ensemble'].weight} chosen on held-out", main, True)
            row.update(macro_f1=ens["dev"]["macro_f1"], accuracy=ens["dev"]["accuracy"],
                       heldout_macro_f1=ens["heldout_macro_f1"], seconds=main.fit.seconds + self.tfidf()["seconds"])
            rows.append(row)
        elif not any(r.get("is_main") for r in rows):  # the main model is none of the named variants
            rows.append(self.row(MAIN, f"finetune.model as configured, biLM {main_mode} ({self.f.out_dir})",
                                 main, True))
        return {"main": main, "main_dev": ens["dev"] if ens is not None else main.dev, "ensemble": ens,
                "comparison": rows}
