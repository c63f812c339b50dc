"""System errors and MLflow URI errors are one line naming the path or URI, exit 2 (issue 22).

tests run as root here, where chmod does not stop writes: a read-only or full disk is simulated at
the one place outputs are created (tempfile.mkstemp, elmo/io.py), and a real OS error comes from a
file where a directory belongs."""

from __future__ import annotations

import errno
import json
import tempfile
from pathlib import Path

import pytest
import yaml

from test_cli_errors import invoke


def one_error_line(res, *needles: str) -> str:
    """The one ``error: `` line (progress bars may share its terminal line), naming every needle."""
    assert res.exit_code == 2, res.output
    errors = [line[line.index("error: "):] for line in res.output.splitlines() if "error: " in line]
    assert len(errors) == 1, res.output
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


# --- system errors (issue 22): one line naming the path, exit 2 -----------------------------------
def _archive(root: Path) -> Path:
    src = root / "archive"
    src.mkdir()
    line = {"category": "기타", "begin": "2019-04-01", "end": "2019-04-28", "content": "내용입니다.",
            "num_agree": 1, "petition_idx": "1", "status": "청원종료", "title": "제목"}
    (src / "petitions_2019-04").write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
    (src / "files").write_text("petitions_2019-04\n")
    return src


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("stage, needle", [
    ("crawl", "data/raw/petitions: Not a directory (ENOTDIR)"),
    ("fetch_task", "data/task/tsk: Not a directory (ENOTDIR)"),
])
def test_a_file_where_data_dir_belongs_is_one_line_naming_the_path(tmp_path, monkeypatch, stage, needle) -> None:
    monkeypatch.chdir(tmp_path)
    _archive(tmp_path)
    (tmp_path / "task").mkdir()
    (tmp_path / "task/t.json").write_text('[{"title": "국회 예산안", "label": "정치"}]', encoding="utf-8")
    Path("params.yaml").write_text(yaml.safe_dump({"crawl": {"source": "archive"}, "finetune": {"task": {
        "name": "tsk", "source": "task", "train_file": "t.json", "dev_file": "t.json", "id_field": None}}}))
    Path("data").write_text("not a directory\n")  # a real OS error, even for root (chmod is not)
    before = _tree(tmp_path)
    one_error_line(invoke(stage), needle)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("err", [
    OSError(30, "Read-only file system"),
    OSError(28, "No space left on device"),
    PermissionError(13, "Permission denied"),
])
def test_read_only_no_space_permission_are_one_line_naming_the_path(tmp_path, monkeypatch, err) -> None:
    monkeypatch.chdir(tmp_path)
    _archive(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump({"crawl": {"source": "archive"}}))
    assert invoke("crawl").exit_code == 0
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kw):  # every atomic output fails as a read-only/full disk would
        if dir is not None and Path(dir).resolve().is_relative_to(tmp_path.resolve() / "data/interim"):
            raise type(err)(err.errno, err.strerror, str(Path(dir) / "x.tmp"))
        return real_mkstemp(*args, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    line = one_error_line(invoke("clean"), "data/interim/x.tmp", err.strerror)
    assert line.endswith(f"({errno.errorcode[err.errno]})")


@pytest.mark.parametrize("uri", ["models:/nonexistent@champion", "models:/elmo-bilm/99", "runs:/deadbeef/model",
                                 "models:/"])
def test_an_mlflow_uri_that_names_nothing_is_one_line_naming_it(tmp_path, monkeypatch, uri) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    Path("params.yaml").write_text("seed: 1\n")
    Path("f.txt").write_text("국회 예산안 통과\n", encoding="utf-8")
    line = one_error_line(invoke("embed", "f.txt", "-m", uri), f"error: {uri}: ", "MLflow store sqlite:///")
    assert "not found" in line or "URI" in line
    assert not Path("f.txt.elmo.npz").exists()
