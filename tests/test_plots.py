"""The pipeline's images (elmo/plots.py) are the same bytes for the same curves, first render or not:
a rerun with unchanged results changes no plot file (nothing new for DVC or a run's record)."""

from __future__ import annotations

from pathlib import Path

from elmo.plots import confusion_png, curves_png


def test_plots_same_curves_same_png_bytes(tmp_path: Path) -> None:
    rows = [{"step": i, "train_loss": 10 / (i + 1)} for i in range(20)]
    for n in (1, 2):
        curves_png(tmp_path / f"c{n}.png", {"train loss": rows}, "step", "train_loss", "biLM 학습 손실")
        confusion_png(tmp_path / f"m{n}.png", [[5, 1], [2, 7]], ["사회", "정치"], "dev 혼동 행렬")
    assert (tmp_path / "c1.png").read_bytes() == (tmp_path / "c2.png").read_bytes()
    assert (tmp_path / "m1.png").read_bytes() == (tmp_path / "m2.png").read_bytes()
    assert (tmp_path / "c1.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
