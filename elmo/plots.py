"""The pipeline's plots: CSVs for ``dvc plots`` and the same as PNG images (matplotlib, Agg) — pretrain's
loss and perplexity curves, finetune's held-out curves and dev confusion matrix. The images need neither
a browser nor internet (``dvc plots show`` writes an HTML page that loads its chart library from a CDN).
matplotlib is imported inside the drawing functions: it is heavy and only they need it."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import numpy as np

from elmo.io import atomic_path, atomic_write_text


def _korean_font():
    """A FontProperties with Hangul glyphs (NanumGothic from koreanize-matplotlib), or None."""
    from matplotlib import font_manager

    try:
        import koreanize_matplotlib  # noqa: F401 - registers NanumGothic with matplotlib
    except ImportError:
        return None
    path = files("koreanize_matplotlib") / "fonts" / "NanumGothic.ttf"
    return font_manager.FontProperties(fname=str(path)) if path.is_file() else None


def confusion_png(path: str | Path, matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str) -> None:
    """Counts with row-normalised shading (recall per true class), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(matrix, dtype=float)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    font = _korean_font()
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 2.5, 1.0 * len(labels) + 2))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontproperties=font)
    ax.set_yticks(range(len(labels)), labels, fontproperties=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontproperties=font)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def curves_png(path: str | Path, curves: dict[str, list[dict]], x: str, y: str, title: str) -> None:
    """One line per curve (``name -> rows``) of ``y`` over ``x``, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = _korean_font()  # before the figure: importing the font package changes matplotlib's defaults
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, rows in curves.items():
        points = [(r[x], r[y]) for r in rows if r.get(x) is not None and r.get(y) is not None]
        if points:
            ax.plot(*zip(*points), marker="o", label=name)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title, fontproperties=font)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_csv(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> None:
    columns = columns or (list(rows[0]) if rows else [])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items() if k in columns})
    atomic_write_text(path, buf.getvalue())
