"""The project's real pipeline (dvc.yaml, every stage) on a tiny workspace: mirror months, the tiny
pretrain preset, a KLUE-layout task of a few headlines. Used by the stage-contract test and the
record/rollback tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml


def tiny_params(repo_root: Path, archive: str | Path, task_source: str | Path, months: list[str] | None) -> dict:
    """The repository's params.yaml, made tiny: sources given, small models, few steps."""
    params = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    params["crawl"].update(source=str(archive), months=months)
    params["pretrain"]["preset"] = "tiny"
    f = params["finetune"]
    f["tasks"]["ynat"]["source"] = str(task_source)
    f["model"].update(word_dim=8, hidden=8, word_min_count=1)
    f["train"].update(batch_size=4, lr=0.01, max_epochs=2, patience=2, threads=1)
    f["tfidf"].update(min_df=1)
    f["adapt"].update(max_steps=4, batch_tokens=128, heldout_sentences=2)
    f["heldout_fraction"] = 0.25
    f["compare"] = ["tfidf_lr"]
    return params


def copy_pipeline(repo_root: Path, root: Path, params: dict) -> None:
    """dvc.yaml, params.yaml and the code it lists as deps (elmo/, flows/) into ``root``."""
    for part in ("elmo", "flows"):  # dvc.yaml's code deps, so that DVC can hash them
        shutil.copytree(repo_root / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo_root / "dvc.yaml", root / "dvc.yaml")
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")


def mirror_archive(shared_data: Path, dest: Path, months: list[str]) -> Path:
    """A local archive in the archive's layout holding only ``months`` (a `files` list + month files)."""
    dest.mkdir(parents=True, exist_ok=True)
    for m in months:
        shutil.copy(shared_data / "petitions_archive" / f"petitions_{m}", dest / f"petitions_{m}")
    (dest / "files").write_text("".join(f"petitions_{m}\n" for m in months), encoding="utf-8")
    return dest
