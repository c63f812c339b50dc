"""Acceptance: `dvc repro clean` against the whole mirror served on 127.0.0.1, in a temp copy.

It writes all 15 months, the manifest, the parquet and the report; a second `dvc repro clean`
runs nothing; re-checking the source (`dvc repro -f -s crawl`) changes nothing downstream.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from elmo.params import set_params

pytestmark = [pytest.mark.slow, pytest.mark.network]


def copy_project(repo: Path, dest: Path) -> None:
    """The project's files as a fresh clone would have them (tracked + new, not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = repo / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / ".dvc").mkdir(exist_ok=True)
    (dest / ".dvc" / "config").write_text("[core]\n    no_scm = true\n    analytics = false\n")


def dvc(ws: Path, *args: str) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1")
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=ws, env=env, capture_output=True,
                          text=True, timeout=400)
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_dvc_repro_clean_on_the_served_mirror(repo_root: Path, mirror_url: str, shared_data: Path, tmp_path: Path):
    ws = tmp_path / "ws"
    copy_project(repo_root, ws)
    set_params(ws / "params.yaml", [f"crawl.source={mirror_url}petitions_archive/"])

    out = dvc(ws, "repro", "clean")
    assert "Running stage 'crawl'" in out and "Running stage 'clean'" in out

    raw = ws / "data/raw/petitions"
    months = (shared_data / "petitions_archive/files").read_text().split()
    assert len(months) == 15
    assert sorted(p.name for p in raw.glob("petitions_*")) == sorted(months)
    for name in months:
        assert (raw / name).read_bytes() == (shared_data / "petitions_archive" / name).read_bytes()
    manifest = json.loads((raw / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(months)
    assert sum(e["lines"] for e in manifest["files"].values()) == 12550

    metrics = json.loads((ws / "metrics/clean.json").read_text())
    assert metrics["read"] == 12550 == metrics["kept"] + metrics["duplicates"] + metrics["quarantined"]
    df = pl.read_parquet(ws / "data/interim/petitions.parquet")
    assert df.height == metrics["kept"] and (ws / "data/interim/quarantine.jsonl").exists()

    # the months and the parquet are never rewritten; the manifest is (crawl marks it running before its
    # first byte and clears the mark at the end), with the same bytes
    before = {p: p.stat().st_mtime_ns for p in [*raw.iterdir(), ws / "data/interim/petitions.parquet"]
              if p.name != "manifest.json"}
    manifest_bytes = (raw / "manifest.json").read_bytes()
    out = dvc(ws, "repro", "clean")
    assert "Running stage" not in out
    assert "Stage 'crawl' didn't change" in out and "Stage 'clean' didn't change" in out
    assert "up to date" in dvc(ws, "status", "clean")

    # Re-checking the source: crawl runs (conditional requests only), its output hash is the same,
    # so clean is not rerun.
    out = dvc(ws, "repro", "-f", "-s", "crawl")
    assert "Running stage 'crawl'" in out
    out = dvc(ws, "repro", "clean")
    assert "Running stage" not in out
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert (raw / "manifest.json").read_bytes() == manifest_bytes
