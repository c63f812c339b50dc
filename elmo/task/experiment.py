"""One finetune run's steps, on plain options (the finetune stage converts params once and calls them):

* data — :class:`TaskSplits`: the held-out slice of train, the task vocabulary, the labels as ids,
* biLMs — :class:`BiLMs`: which biLM a mode uses (pretrained, adapted on the task text, random),
* cache — :class:`LayerCache`: a frozen biLM's layers of each split (elmo/embed/cache.py),
* train — :class:`TaskTrainer`: one task model per variant, selected on the held-out slice,
* ensemble — :class:`TfidfBaseline` and :func:`ensemble`: the main model x TF-IDF,
* table — :func:`comparison`: the main model, its ensemble and the compared variants as rows;
the outputs are written by elmo/task/outputs.py. Metrics per epoch go to a tracker
(``elmo.tracking.RunTracker``; this module never imports mlflow); messages to ``log`` (the
``elmo.finetune`` logger).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from elmo.embed.cache import cached_layers
from elmo.embed.elmo import Elmo
from elmo.errors import StageError
from elmo.log import get_logger
from elmo.model import BiLM, vocab_dir
from elmo.model.files import read_config
from elmo.stable_hash import unit_hash
from elmo.task.adapt import AdaptOptions, adapt_bilm, random_bilm
from elmo.task.baseline import tfidf_lr
from elmo.task.ensemble import select_ensemble
from elmo.task.metrics import probs_metrics
from elmo.task.model import BiLMTaskModel, TaskConfig, TaskModel
from elmo.task.train import FitResult, TaskData, fit, predict_proba
from elmo.task.variants import BASELINE, BASELINE_DESCRIPTION, UNFROZEN_MODES, VARIANTS, variant_mode, variant_params
from elmo.task.words import TaskWords
from elmo.tracking import NullTracker
from elmo.train.schedule import UnfreezePlan, bilm_layer_groups
from elmo.vocab import Vocabulary

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


# ---------------------------------------------------------------------- data
@dataclass(frozen=True)
class SplitOptions:
    """``finetune.heldout_fraction``, ``heldout_salt``, ``model.word_min_count``; ``train_file`` names the
    train split in errors."""

    heldout_fraction: float
    heldout_salt: str
    word_min_count: int
    train_file: str


@dataclass
class TaskSplits:
    """The data step: fit / held-out (a slice of train) / dev records, their token lists and label ids,
    and the task vocabulary (built on the fit split)."""

    labels: list[str]
    train_recs: list
    fit_recs: list
    held_recs: list
    dev_recs: list
    train_tok: list[list[str]]
    tokens: dict[str, list[list[str]]]  # fit / heldout / dev
    y: dict[str, np.ndarray]
    words: TaskWords

    @classmethod
    def build(cls, inputs: TaskInputs, opts: SplitOptions, log: Callable[[str], None]) -> TaskSplits:
        train_recs, train_tok, dev_recs = inputs.train_recs, inputs.train_tok, inputs.dev_recs
        if len(train_recs) < 2:
            raise StageError(f"{opts.train_file}: {len(train_recs)} usable text(s); finetune needs at least 2 "
                             "(one for the held-out slice)")
        held = heldout_split(train_recs, opts.heldout_fraction, opts.heldout_salt)
        fit_recs = [r for r, h in zip(train_recs, held) if not h]
        held_recs = [r for r, h in zip(train_recs, held) if h]
        tokens = {"fit": [t for t, h in zip(train_tok, held) if not h],
                  "heldout": [t for t, h in zip(train_tok, held) if h], "dev": inputs.dev_tok}
        words = TaskWords.build(tokens["fit"], opts.word_min_count)
        index = {lab: i for i, lab in enumerate(inputs.labels)}
        y = {"fit": np.array([index[r.label] for r in fit_recs], dtype=np.int64),
             "heldout": np.array([index[r.label] for r in held_recs], dtype=np.int64),
             "dev": np.array([index[r.label] for r in dev_recs], dtype=np.int64)}
        log(f"model selection on a held-out slice of train: {len(fit_recs)} fit / {len(held_recs)} "
            f"held-out texts (heldout_fraction {opts.heldout_fraction}); dev ({len(dev_recs)}) is reported once")
        return cls(inputs.labels, train_recs, fit_recs, held_recs, dev_recs, train_tok, tokens, y, words)


# ---------------------------------------------------------------------- biLMs
class BiLMs:
    """Which biLM directory a mode uses: ``bilm_dir`` (frozen, unfrozen), the biLM adapted on
    ``adapt_texts`` into ``adapt_dir`` (adapted, adapted_unfrozen; once), or the random-weight control
    in ``random_dir`` (seeded by ``seed``)."""

    def __init__(self, bilm_dir: Path | None, *, random_dir: Path, seed: int, adapt_dir: Path,
                 adapt: AdaptOptions, adapt_texts: list[list[str]], log: Callable[[str], None]) -> None:
        self.bilm_dir, self.random_dir, self.seed, self.log = bilm_dir, random_dir, seed, log
        self.adapt_dir, self.adapt_opts, self.adapt_texts = adapt_dir, adapt, adapt_texts
        self.adapted: Any = None  # AdaptResult, once adapted

    def for_mode(self, mode: str) -> Path:
        if self.bilm_dir is None:
            raise StageError("finetune.bilm_dir: this run has no biLM (run `elmo pretrain` first)")
        if mode in ("frozen", "unfrozen"):
            return self.bilm_dir
        if mode in ("adapted", "adapted_unfrozen"):
            return self.adapt().path
        if mode == "random":
            return random_bilm(self.bilm_dir, self.random_dir, seed=self.seed)
        raise ValueError(f"unknown biLM mode {mode!r}")

    def adapt(self):
        if self.adapted is None:
            self.adapted = adapt_bilm(self.bilm_dir, self.adapt_texts, self.adapt_dir, self.adapt_opts, log=self.log)
        return self.adapted


# ---------------------------------------------------------------------- cache
class LayerCache:
    """A frozen biLM's layers of one split (fit / heldout / dev), computed once into ``cache_dir``
    (``dtype``; ``batch_tokens`` per biLM batch) and read back; ``seconds`` spent on them."""

    def __init__(self, pipeline, tokens: dict[str, list[list[str]]], cache_dir: Path, dtype: str,
                 batch_tokens: int, log: Callable[[str], None]) -> None:
        self.pipeline, self.tokens, self.cache_dir, self.dtype = pipeline, tokens, cache_dir, dtype
        self.batch_tokens, self.log = batch_tokens, log
        self.caches: dict[tuple[str, str], Any] = {}
        self.seconds = 0.0

    def layers(self, bilm_dir: Path, split: str):
        key = (str(bilm_dir), split)
        if key not in self.caches:
            t0 = time.perf_counter()
            elmo = Elmo.load(bilm_dir, pipeline=self.pipeline, max_batch_tokens=self.batch_tokens)
            cache = cached_layers(elmo, self.tokens[split], self.cache_dir, model_dir=bilm_dir,
                                  dtype=self.dtype, desc=f"biLM layers ({split})")
            self.caches[key] = cache
            self.log(f"biLM layers for {split}: {'read from' if cache.hit else 'computed into'} {cache.path}")
            self.seconds += time.perf_counter() - t0
        return self.caches[key]

    def layer_dtype(self, t: Trained) -> str:
        """The precision of the biLM layers ``t`` was trained on: the layer cache's for a frozen biLM;
        float32 when the biLM ran inside the model (unfrozen modes) or there is none."""
        frozen = t.bilm_dir is not None and not isinstance(t.model, BiLMTaskModel)
        return self.dtype if frozen else "float32"


# ---------------------------------------------------------------------- train
@dataclass(frozen=True)
class TrainOptions:
    """``finetune.train`` (a frozen biLM or none), ``finetune.unfreeze`` (the biLM trained inside the
    model) and the run's seed."""

    train: Any  # elmo.params.finetune.TrainParams
    unfreeze: Any  # elmo.params.finetune.UnfreezeParams
    seed: int


class TaskTrainer:
    """Trains one task model per variant on the data step's splits; ``ended_by``: what trained ->
    how it ended (steps|epochs|early_stop|clock), the adaptation (``adapt``) included."""

    def __init__(self, data: TaskSplits, bilms: BiLMs, cache: LayerCache, opts: TrainOptions, *,
                 tracker: Any = None, log: Callable[[str], None] | None = None) -> None:
        self.d, self.bilms, self.cache, self.opts = data, bilms, cache, opts
        self.tracker = tracker if tracker is not None else NullTracker()
        self.log = log if log is not None else get_logger("finetune").info
        self.ended_by: dict[str, str] = {}

    def data(self, split: str, mode: str | None, bilm_dir: Path | None) -> TaskData:
        layers = self.cache.layers(bilm_dir, split) if mode is not None and mode not in UNFROZEN_MODES else None
        toks = self.d.tokens[split]
        return TaskData([self.d.words.ids(t) for t in toks], self.d.y[split], layers,
                        tokens=toks if mode in UNFROZEN_MODES else None)

    def task_config(self, mp, bilm_cfg) -> TaskConfig:
        return TaskConfig(
            n_classes=len(self.d.labels), vocab_size=len(self.d.words),
            elmo_layers=bilm_cfg.n_layers + 1 if mp.use_elmo else 0,
            elmo_dim=2 * bilm_cfg.projection_dim if mp.use_elmo else 0,
            use_elmo=mp.use_elmo, elmo_gamma=mp.elmo_gamma, elmo_layer_norm=mp.elmo_layer_norm,
            elmo_output_mix=mp.elmo_output_mix, elmo_dropout=mp.elmo_dropout, word_dim=mp.word_dim, rnn=mp.rnn,
            hidden=mp.hidden, rnn_layers=mp.rnn_layers, pooling=mp.pooling, dropout=mp.dropout)

    def bilm_for(self, mode: str) -> Path:
        bilm_dir = self.bilms.for_mode(mode)
        if self.bilms.adapted is not None and "adapt" not in self.ended_by:
            self.ended_by["adapt"] = self.bilms.adapted.info["ended_by"]
        return bilm_dir

    def train(self, name: str, mp, mode: str | None) -> Trained:
        seed = self.opts.seed
        mode = mode if mp.use_elmo else None
        bilm_dir = self.bilm_for(mode) if mode is not None else None
        bilm_cfg = read_config(bilm_dir)["config"] if bilm_dir is not None else None
        train, held = self.data("fit", mode, bilm_dir), self.data("heldout", mode, bilm_dir)
        torch.manual_seed(seed)
        model = TaskModel(self.task_config(mp, bilm_cfg))
        tp, unfreeze = self.opts.train, None
        options = dict(batch_size=tp.batch_size, lr=tp.lr, weight_decay=tp.weight_decay, max_epochs=tp.max_epochs,
                       patience=tp.patience, grad_clip=tp.grad_clip, seed=seed, lr_decay=tp.lr_decay,
                       max_seconds=tp.max_minutes * 60 if tp.max_minutes else None)
        if mode in UNFROZEN_MODES:
            u = self.opts.unfreeze
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
        result = fit(model, train, held, self.d.labels, name=name, unfreeze=unfreeze, on_epoch=on_epoch,
                     log=self.log, **options)
        self.ended_by[name] = result.ended_by
        dev_probs = predict_proba(model, self.data("dev", mode, bilm_dir))
        dev = probs_metrics(self.d.y["dev"], dev_probs, self.d.labels)
        self.log(f"{name}: best held-out macro-F1 {result.best_heldout['macro_f1']:.4f} at epoch {result.best_epoch}"
                 f" -> dev macro-F1 {dev['macro_f1']:.4f} ({result.seconds:.0f}s)")
        return Trained(model, result, dev, dev_probs, bilm_dir)


# ---------------------------------------------------------------------- ensemble
class TfidfBaseline:
    """TF-IDF + logistic regression on the fit split (``tfidf``: finetune.tfidf): the baseline row and
    the ensemble's sparse half, trained once on first use."""

    def __init__(self, data: TaskSplits, tfidf, seed: int, log: Callable[[str], None]) -> None:
        self.d, self.tfidf, self.seed, self.log = data, tfidf, seed, log
        self._result: dict[str, Any] | None = None

    def get(self) -> dict[str, Any]:
        if self._result is None:
            d = self.d
            self.log("training tfidf_lr (TF-IDF + logistic regression)")
            m = tfidf_lr([r.text for r in d.fit_recs], [r.label for r in d.fit_recs],
                         [r.text for r in d.dev_recs], [r.label for r in d.dev_recs], d.labels,
                         self.tfidf, seed=self.seed)
            self.log(f"tfidf_lr: dev macro-F1 {m['macro_f1']:.4f} ({m['seconds']:.0f}s, {m['features']:,} features)")
            self._result = m
        return self._result


def ensemble(main: Trained, mode: str, trainer: TaskTrainer, tfidf: TfidfBaseline, weights: list[float]
             ) -> dict[str, Any]:
    """The main model (biLM ``mode``) x TF-IDF: temperatures and weight (one of ``weights``) on the
    held-out slice, then dev once."""
    d = trainer.d
    sparse = tfidf.get()["model"]
    mode = mode if main.model.cfg.use_elmo else None
    held = predict_proba(main.model, trainer.data("heldout", mode, main.bilm_dir))
    ens, scores = select_ensemble(held, sparse.predict_proba([r.text for r in d.held_recs]), d.y["heldout"],
                                  d.labels, weights)
    dev_p = ens.combine(main.dev_probs, sparse.predict_proba([r.text for r in d.dev_recs]))
    dev = probs_metrics(d.y["dev"], dev_p, d.labels)

    held_f1 = max(s["heldout_macro_f1"] for s in scores)
    trainer.log(f"ensemble with tfidf_lr: weight {ens.weight} (temperatures {ens.t_elmo:.2f} / {ens.t_tfidf:.2f}), "
                f"held-out macro-F1 {held_f1:.4f} -> dev macro-F1 {dev['macro_f1']:.4f}")
    return {"ensemble": ens, "tfidf": sparse, "dev": dev, "dev_probs": dev_p, "heldout_macro_f1": held_f1,
            "weights": scores}


# ---------------------------------------------------------------------- table
@dataclass(frozen=True)
class ComparisonOptions:
    """The main model (``finetune.model``, biLM ``finetune.bilm.mode``), whether it is ensembled with
    TF-IDF (``finetune.ensemble``), what it is compared with (``finetune.compare``), and ``out_dir``
    (the main model's directory as params name it, for its row's description)."""

    model: Any  # elmo.params.finetune.TaskModelParams
    mode: str
    with_tfidf: bool
    weights: list[float]
    compare: list[str]
    out_dir: str


def row(name: str, description: str, t: Trained, is_main: bool) -> dict[str, Any]:
    return {"name": name, "description": description, "macro_f1": t.dev["macro_f1"],
            "accuracy": t.dev["accuracy"], "heldout_macro_f1": t.fit.best_heldout["macro_f1"],
            "best_epoch": t.fit.best_epoch, "seconds": t.fit.seconds, "epochs": len(t.fit.history),
            "ended_by": t.fit.ended_by, "is_main": is_main,
            "history": [{"epoch": h["epoch"], "heldout_macro_f1": h["heldout_macro_f1"]} for h in t.fit.history]}


def comparison(opts: ComparisonOptions, trainer: TaskTrainer, tfidf: TfidfBaseline) -> dict[str, Any]:
    """The main model, its ensemble, and one row per compared model (trained here unless it is the main
    model's configuration): {main, main_dev, ensemble, comparison (the rows)}."""
    main_mode = opts.mode
    main = trainer.train(MAIN, opts.model, main_mode)
    ens = ensemble(main, main_mode, trainer, tfidf, opts.weights) if opts.with_tfidf else None
    rows = []
    for name in opts.compare:
        if name == BASELINE:
            m = tfidf.get()
            rows.append({"name": name, "description": BASELINE_DESCRIPTION, "macro_f1": m["macro_f1"],
                         "accuracy": m["accuracy"], "heldout_macro_f1": None, "best_epoch": None,
                         "seconds": m["seconds"]})
            continue
        mp, mode = variant_params(opts.model, name), variant_mode(name)
        same = mp == opts.model and (mode == main_mode or not mp.use_elmo)
        t = main if same else trainer.train(name, mp, mode)  # same config, seed and data: the same model
        rows.append(row(name, VARIANTS[name][0], t, same and ens is None))
    if ens is not None:
        main_row = row(MAIN, f"the main model ({opts.out_dir}): ELMo classifier (biLM {main_mode}) x tfidf_lr, "
                             f"calibrated, weight {ens['ensemble'].weight} chosen on held-out", main, True)
        main_row.update(macro_f1=ens["dev"]["macro_f1"], accuracy=ens["dev"]["accuracy"],
                        heldout_macro_f1=ens["heldout_macro_f1"], seconds=main.fit.seconds + tfidf.get()["seconds"])
        rows.append(main_row)
    elif not any(r.get("is_main") for r in rows):  # the main model is none of the named variants
        rows.append(row(MAIN, f"finetune.model as configured, biLM {main_mode} ({opts.out_dir})", main, True))
    return {"main": main, "main_dev": ens["dev"] if ens is not None else main.dev, "ensemble": ens,
            "comparison": rows}
