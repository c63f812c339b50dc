"""The output guard (elmo/params/guard.py): an output never lands on an input, on the project's own files
or on another output, and never replaces a directory with a file (or the reverse).

One test per data-loss case of issue 22, run as the real ``elmo`` command (a subprocess) on a tiny
workspace (a git repository with the project's params.yaml and dvc.yaml, a crawled month, metrics,
a biLM directory, a task source): each is refused with exit 2 and one line naming both paths, and
every file of the workspace is byte-identical afterwards. Where ``elmo params set`` already refuses,
the same values written into params.yaml by hand are refused by the stage itself.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from elmo.errors import StageError
from elmo.io import atomic_path, atomic_write_text
from elmo.params import Params, ParamsError, parse_params
from elmo.params.guard import STAGES, OutputCollision, Use, check_command, check_replace, stage_uses
from elmo.params.paths import workspace_paths

REPO = Path(__file__).resolve().parents[1]


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file (and the target of every link) under ``root``, by relative path."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A tiny workspace: the project's params.yaml and dvc.yaml in a git repository, plus the files the
    cases would destroy."""
    root = tmp_path / "ws"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, root / name)
    files = {
        "README.md": "# my notes\n",
        "dvc.lock": "schema: '2.0'\nstages: {}\n",
        "data/raw/petitions/petitions_2019-04": '{"petition_idx": "1", "title": "t"}\n',
        "data/raw/petitions/manifest.json": "{}\n",
        "metrics/clean.json": '{"kept": 1}\n',
        "metrics/tokenize.json": '{"tokens": 2}\n',
        "models/bilm/config.json": "{}\n",
        "models/bilm/weights.safetensors": "weights",
        "tasksrc/ynat-v1.1_train.json": "[]\n",
        "tasksrc/ynat-v1.1_dev.json": "[]\n",
        "ok.txt": "국민청원 게시판\n",
        "victim.txt": "소중한 글\n",
        "some_existing_dir/a.txt": "a\n",
        "some_existing_dir/sub/b.txt": "b\n",
        "reports/mine.txt": "mine\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def elmo(root: Path, *args: str) -> subprocess.CompletedProcess:
    code = "import sys; from elmo.cli import app; sys.argv[0] = 'elmo'; app()"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def refused(root: Path, *args: str, names: tuple[str, ...]) -> str:
    """Run ``elmo *args``: exit 2, one ``error:`` line naming each of ``names``, no traceback, and every
    file of the workspace unchanged."""
    before = tree_digest(root)
    res = elmo(root, *args)
    assert res.returncode == 2, (args, res.returncode, res.stdout, res.stderr[-2000:])
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, res.stderr[-2000:]
    for name in names:
        assert name in errors[0], (name, errors[0])
    assert tree_digest(root) == before, f"elmo {' '.join(args)} changed the workspace"
    return errors[0]


def hand_edit(root: Path, assignments: dict[str, str]) -> None:
    """Write values into params.yaml without `elmo params set` (as an editor would)."""
    data = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    for key, value in assignments.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    (root / "params.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def set_then_run(root: Path, stage: str, assignments: dict[str, str], names: tuple[str, ...]) -> None:
    """``elmo params set ...`` is refused (params.yaml unchanged); the same values written by hand make
    ``elmo <stage>`` refuse before reading anything."""
    refused(root, "params", "set", *(f"{k}={v}" for k, v in assignments.items()), names=names)
    hand_edit(root, assignments)
    refused(root, stage, names=names)


# --- the nine data-loss cases of issue 22 --------------------------------------------------------

def test_collision_case1_clean_metrics_on_params_yaml_and_quarantine_on_readme(ws: Path) -> None:
    set_then_run(ws, "clean", {"clean.metrics": "params.yaml", "clean.quarantine": "README.md"},
                 ("clean.metrics", "'params.yaml'", "the same file as params.yaml"))


def test_collision_case2_clean_out_parquet_on_a_crawled_month(ws: Path) -> None:
    set_then_run(ws, "clean", {"clean.out_parquet": "data/raw/petitions/petitions_2019-04"},
                 ("clean.out_parquet", "data/raw/petitions/petitions_2019-04", "clean.in_dir", "'data/raw/petitions'"))


def test_collision_case3_clean_metrics_on_the_metrics_directory(ws: Path) -> None:
    set_then_run(ws, "clean", {"clean.metrics": "metrics"}, ("clean.metrics", "'metrics'", "metrics/"))


def test_collision_case4_clean_quarantine_on_data_raw(ws: Path) -> None:
    set_then_run(ws, "clean", {"clean.quarantine": "data/raw"},
                 ("clean.quarantine", "'data/raw'", "clean.in_dir", "'data/raw/petitions'"))


def test_collision_case5_finetune_out_dir_is_the_task_source(ws: Path) -> None:
    set_then_run(ws, "finetune", {"finetune.tasks.ynat.source": "tasksrc", "finetune.out_dir": "tasksrc"},
                 ("finetune.out_dir", "finetune.task.source", "'tasksrc'"))


def test_collision_case6_finetune_out_dir_is_the_bilm(ws: Path) -> None:
    set_then_run(ws, "finetune", {"finetune.out_dir": "models/bilm"},
                 ("finetune.out_dir", "finetune.bilm_dir", "'models/bilm'"))


def test_collision_case7_embed_out_on_an_existing_directory(ws: Path) -> None:
    refused(ws, "embed", "ok.txt", "-o", "some_existing_dir", names=("--out", "'some_existing_dir'", "directory"))


def test_collision_case8_embed_out_is_its_input(ws: Path) -> None:
    refused(ws, "embed", "victim.txt", "-o", "victim.txt", names=("--out", "FILE", "'victim.txt'"))


def test_collision_case9_embed_out_on_params_yaml(ws: Path) -> None:
    refused(ws, "embed", "ok.txt", "-o", "params.yaml",
            names=("--out", "'params.yaml'", "the same file as params.yaml"))


# --- what only the filesystem shows ----------------------------------------------------------------

def test_collision_a_file_output_never_replaces_an_existing_directory(ws: Path) -> None:
    """reports/ is nobody's path in params.yaml: only the filesystem shows it is a directory."""
    assert parse_params({"clean": {"metrics": "reports"}})
    hand_edit(ws, {"clean.metrics": "reports"})
    refused(ws, "clean", names=("clean.metrics", "'reports'", "existing directory"))


def test_collision_through_a_symlink_is_seen(ws: Path) -> None:
    """out/ links to the crawled months: a metrics file under it would land in clean's input."""
    (ws / "out").symlink_to("data/raw/petitions")
    hand_edit(ws, {"clean.metrics": "out/clean.json"})
    refused(ws, "clean", names=("clean.metrics", "'out/clean.json'", "clean.in_dir", "'data/raw/petitions'"))


def test_collision_rollback_state_through_a_symlink_into_git_is_refused(ws: Path) -> None:
    """rollback's state file (register.rollback_state) checked on disk before anything is restored."""
    (ws / "state").symlink_to(".git")
    hand_edit(ws, {"register.rollback_state": "state/rollback.json"})
    refused(ws, "rollback", "--to", "1", names=("register.rollback_state", "'state/rollback.json'", ".git"))


def test_collision_embed_out_onto_a_file_embed_did_not_write_needs_force(ws: Path) -> None:
    refused(ws, "embed", "ok.txt", "-o", "README.md", names=("--out", "'README.md'", "--force"))


def test_collision_embed_may_replace_its_own_previous_output(tmp_path: Path) -> None:
    ours, foreign = tmp_path / "prev.npz", tmp_path / "other.npz"
    with open(ours, "wb") as fh:
        np.savez(fh, tokens=np.array(["a"]), offsets=np.array([0, 1]), line_numbers=np.array([1]),
                 mixed=np.zeros((1, 2)))
    with open(foreign, "wb") as fh:
        np.savez(fh, weights=np.zeros(3))
    from elmo.embed.elmo import written_by_embed

    check_replace("embed", Use("--out", str(ours), "file"), tmp_path, force=False, ours=written_by_embed)
    with pytest.raises(OutputCollision, match="--force"):
        check_replace("embed", Use("--out", str(foreign), "file"), tmp_path, force=False, ours=written_by_embed)
    check_replace("embed", Use("--out", str(foreign), "file"), tmp_path, force=True, ours=written_by_embed)


def test_collision_atomic_path_never_swaps_a_directory_and_a_file(tmp_path: Path) -> None:
    d, f = tmp_path / "d", tmp_path / "f"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "x").write_text("keep")
    f.write_text("keep")
    with pytest.raises(StageError, match="existing directory"):
        atomic_write_text(d, "a file")
    with pytest.raises(StageError, match="existing file"), atomic_path(f) as tmp:
        tmp.mkdir()
    assert (d / "sub" / "x").read_text() == "keep" and f.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]  # no temporary left
    with atomic_path(d) as tmp:  # a directory output replaces its previous version
        tmp.mkdir()
        (tmp / "new").write_text("new")
    atomic_write_text(f, "new")
    assert [p.name for p in d.iterdir()] == ["new"] and f.read_text() == "new"


# --- the minor path items ------------------------------------------------------------------------

def test_collision_params_set_writes_through_a_symlinked_params_file(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    shutil.copy(REPO / "params.yaml", real)
    (tmp_path / "link.yaml").symlink_to("real.yaml")
    res = elmo(tmp_path, "params", "set", "--params", "link.yaml", "seed=7")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "link.yaml").is_symlink() and os.readlink(tmp_path / "link.yaml") == "real.yaml"
    assert yaml.safe_load(real.read_text())["seed"] == 7


@pytest.mark.parametrize("assignment, names", [
    ("crawl.out_dir=data/raw/petitions/../../../.git", ("crawl.out_dir", ".git")),
    ("crawl.out_dir=data/../.dvc/cache", ("crawl.out_dir", ".dvc")),
    ("mlflow.artifact_root=../elsewhere", ("mlflow.artifact_root", "climbs out of the workspace")),
    ("mlflow.artifact_root=/tmp/artifacts", ("mlflow.artifact_root", "is an absolute path")),
    ("mlflow.artifact_root=.git/x", ("mlflow.artifact_root", ".git")),
    ("mlflow.tracking_uri=sqlite:///dvc.lock", ("mlflow.tracking_uri", "dvc.lock")),
])
def test_collision_normalised_paths_do_not_escape_the_checks(ws: Path, assignment: str, names) -> None:
    line = refused(ws, "params", "set", assignment, names=names)
    assert " is climbs" not in line


def test_collision_escape_message_reads_well() -> None:
    with pytest.raises(ParamsError) as err:
        parse_params({"crawl": {"out_dir": "../x"}})
    assert "'../x' climbs out of the workspace" in str(err.value) and "is climbs" not in str(err.value)


def test_collision_project_params_are_clean() -> None:
    """The project's own params.yaml passes the guard (it would refuse every command otherwise)."""
    assert parse_params(yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8")))


def test_collision_guard_declares_every_output_param_and_every_stage() -> None:
    """A new output param (a WorkspacePath) or a new dvc.yaml stage cannot bypass the guard."""
    params = Params()
    declared = {u.key for s in STAGES for u in stage_uses(params, s) if u.output}
    outputs = {key for key, _ in workspace_paths(params)}
    assert outputs <= declared, outputs - declared
    dvc_stages = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    assert dvc_stages <= set(STAGES), dvc_stages - set(STAGES)


def test_collision_check_command_is_the_function_for_any_writer(tmp_path: Path) -> None:
    """What rollback (or any other command) calls: its own uses, checked on the filesystem."""
    (tmp_path / "in").mkdir()
    with pytest.raises(OutputCollision, match=r"^rollback: --state 'in/s.json' lies inside --from 'in'"):
        check_command("rollback", [Use("--from", "in"), Use("--state", "in/s.json", "file")], tmp_path)
    with pytest.raises(OutputCollision, match="the same file as dvc.lock"):
        check_command("rollback", [Use("--state", "dvc.lock", "file")], tmp_path)
    check_command("rollback", [Use("--from", "in"), Use("--state", ".elmo/s.json", "file")], tmp_path)


def test_collision_an_output_that_links_into_the_dvc_cache_is_no_collision(tmp_path: Path) -> None:
    """With DVC's symlink cache an output is a link into .dvc/cache; writing it replaces the link only."""
    cached = tmp_path / ".dvc/cache/files/md5/ab/cdef"
    cached.parent.mkdir(parents=True)
    cached.write_text("{}")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/clean.json").symlink_to(cached)
    check_command("clean", [Use("clean.metrics", "metrics/clean.json", "file")], tmp_path)
    (tmp_path / "state").symlink_to(tmp_path / ".dvc")  # a directory reached through a link still is .dvc
    with pytest.raises(OutputCollision, match=r"clean.metrics 'state/x.json' lies inside .dvc"):
        check_command("clean", [Use("clean.metrics", "state/x.json", "file")], tmp_path)
