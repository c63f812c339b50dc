"""Shared fixtures: the repository root, the offline data mirror and a 127.0.0.1 server over it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    return Path(os.environ.get("ELMO_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $ELMO_SHARED_DATA). CI always has it; elsewhere its tests are skipped."""
    path = _shared_data()
    if not (path / "petitions_archive" / "files").exists():
        if os.environ.get("CI"):
            pytest.fail(f"the offline mirror is missing at {path} (set ELMO_SHARED_DATA)")
        pytest.skip(f"offline mirror not found at {path}")
    return path


@pytest.fixture(scope="session")
def mirror_url(shared_data: Path):
    """The whole mirror served read-only on 127.0.0.1 for the test session."""
    from elmo.httpserve import serve_directory

    with serve_directory(shared_data) as url:
        yield url
