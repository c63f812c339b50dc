"""Every successful run records itself (elmo/registry/record.py), tried the way a user runs it:
``elmo repro`` on the toy DVC + git project of test_registry_toy.py (its register stage is the real
``elmo register``), with hand edits and unrelated work lying around.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from test_registry_toy import MODEL_NAME, make_project, sh, write_toy_params

pytestmark = pytest.mark.timeout(600)


def git(root: Path, *args: str) -> str:
    return sh(root, "git", *args).stdout


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def repro(root: Path, *args: str, check: bool = True):
    return sh(root, "elmo", "repro", *args, check=check)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root, _remote, _registry = make_project(tmp_path)
    return root


def test_record_commits_exactly_what_the_run_changed_and_pushes(project: Path) -> None:
    root = project
    # a person's work in progress: an untracked note, a tracked code file edited, something staged
    (root / "notes.txt").write_text("ideas, not for the record\n")
    (root / "toy_model.py").write_text((root / "toy_model.py").read_text() + "# work in progress\n")
    (root / "staged.txt").write_text("staged by hand\n")
    git(root, "add", "staged.txt")
    # and a hand edit of the params (a comment and a value): the run uses it, so it is recorded
    params_text = (root / "params.yaml").read_text() + "# tuned by hand\n"
    (root / "params.yaml").write_text(params_text)
    write_toy_params(root, rows=4, quality=0.7)
    toy_yaml = (root / "toy.yaml").read_text()
    before = {p: sha(root / p) for p in ("notes.txt", "toy_model.py", "staged.txt")}
    head = git(root, "rev-parse", "HEAD").strip()

    r = repro(root, "--run", "test run 1")
    report = json.loads(r.stdout)

    assert report["recorded"] is True
    commit = git(root, "rev-parse", "HEAD").strip()
    assert report["commit"] == commit and commit != head
    assert git(root, "rev-parse", "HEAD~1").strip() == head  # on the checked-out branch, one commit
    files = sorted(git(root, "show", "--name-only", "--format=", "HEAD").split())
    assert files == ["dvc.lock", "metrics/register.json", "metrics/toy.json", "params.yaml", "toy.yaml"]
    assert git(root, "show", "HEAD:params.yaml") == params_text  # exactly the hand-edited file
    assert git(root, "show", "HEAD:toy.yaml") == toy_yaml
    msg = git(root, "log", "-1", "--format=%B")
    assert msg.startswith("elmo run: test run 1\n")
    assert "Stages run: prepare, train, register" in msg
    assert f"Registered: {MODEL_NAME} v1 (new; champion -> v1)" in msg
    assert "Uncommitted code changes (git.dirty; not part of this record): staged.txt, toy_model.py" in msg
    # the person's work is exactly as it was: uncommitted, unchanged, still staged
    assert {p: sha(root / p) for p in before} == before
    status = git(root, "status", "--porcelain")
    assert "?? notes.txt" in status and " M toy_model.py" in status and "A  staged.txt" in status
    assert "dvc.lock" not in status and "params.yaml" not in status and "metrics" not in status
    # the registered version says its code was dirty, and the outputs are on the remote
    assert "Cache and remote 'store' are in sync" in sh(root, "dvc", "status", "-c").stdout
    assert report["push"]["remote"] == "store" and report["push"]["pushed"] >= 2
    rows = json.loads(sh(root, "elmo", "rollback", "--list", "--json").stdout)
    assert [(r["version"], r["data_commit"], r["code_dirty"], r["champion_at_commit"]) for r in rows] == \
        [(1, commit, True, 1)]

    # a second run with nothing changed: nothing to commit, nothing new registered
    r2 = json.loads(repro(root, "--run", "test run 2").stdout)
    assert r2["recorded"] is False and r2["files"] == [] and r2["stages"] == []
    assert git(root, "rev-parse", "HEAD").strip() == commit


def test_record_nothing_when_the_run_fails(project: Path) -> None:
    root = project
    first = json.loads(repro(root, "--run", "good run").stdout)
    good = git(root, "rev-parse", "HEAD").strip()
    assert first["commit"] == good
    # the train stage fails on this value (the toy adds a number to it)
    (root / "toy.yaml").write_text(yaml.safe_dump({"data": {"rows": 5}, "train": {"quality": "high"}}))
    r = repro(root, "--run", "bad run", check=False)
    assert r.returncode == 2, r.stderr
    assert "dvc repro failed" in r.stderr and "nothing was recorded" in r.stderr
    assert git(root, "rev-parse", "HEAD").strip() == good  # the previous record is intact
    assert git(root, "log", "-1", "--format=%s").strip() == "elmo run: good run"


def test_record_refuses_before_running_on_a_detached_head_or_another_branch(project: Path) -> None:
    root = project
    git(root, "checkout", "-q", "--detach")
    r = repro(root, check=False)
    assert r.returncode == 2 and "HEAD is detached" in r.stderr
    assert not (root / "dvc.lock").exists()  # refused before the first stage
    git(root, "checkout", "-q", "main")
    sh(root, "elmo", "params", "set", "flows.record.branch=release")
    git(root, "commit", "-qam", "records go on release")
    r = repro(root, check=False)
    assert r.returncode == 2 and "branch 'main' is checked out but records go on 'release'" in r.stderr
    assert not (root / "dvc.lock").exists()


def test_record_can_be_switched_off(project: Path) -> None:
    root = project
    sh(root, "elmo", "params", "set", "flows.record.enabled=false")
    head = git(root, "rev-parse", "HEAD").strip()
    out = json.loads(repro(root).stdout)
    assert out == {"recorded": False, "reason": "flows.record.enabled is false"}
    assert git(root, "rev-parse", "HEAD").strip() == head and (root / "dvc.lock").exists()


def test_record_source_overrides_reach_the_stages_but_never_params_yaml(tmp_path: Path, monkeypatch) -> None:
    """`make pipeline MIRROR=...` gives the mirror through $ELMO_SOURCE_OVERRIDES: the run uses it,
    params.yaml (and so the record) keeps the public source."""
    from elmo.params import ParamsError, load_params

    params = tmp_path / "params.yaml"
    params.write_text("crawl:\n  source: https://example.org/archive/\n", encoding="utf-8")
    text = params.read_text()
    monkeypatch.setenv("ELMO_SOURCE_OVERRIDES", "crawl.source=http://127.0.0.1:9/archive/ "
                                                "finetune.tasks.ynat.source=/mirror/ynat/")
    p = load_params(params)
    assert p.crawl.source == "http://127.0.0.1:9/archive/" and p.finetune.task.source == "/mirror/ynat/"
    assert params.read_text() == text
    for bad, why in [("crawl.out_dir=/tmp/x", "only the sources"), ("nosuch.source=x", "nosuch: unknown key"),
                     ("crawl.source", "expected section.source=")]:
        monkeypatch.setenv("ELMO_SOURCE_OVERRIDES", bad)
        with pytest.raises(ParamsError, match=why):
            load_params(params)


def test_record_refuses_before_running_without_a_git_identity_or_a_remote(project: Path, tmp_path: Path) -> None:
    """A fresh machine: no user.name/user.email, or no DVC remote: refused at once, not after the run."""
    import os
    import subprocess
    import sys

    root = project
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run(["elmo", "repro"], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "git cannot author the run's record commit" in r.stderr, r.stderr
    assert "git config user.email" in r.stderr and not (root / "dvc.lock").exists()
    sh(root, "dvc", "remote", "remove", "store")
    r = repro(root, check=False)
    assert r.returncode == 2 and "no default DVC remote to push the run's outputs to" in r.stderr
    assert not (root / "dvc.lock").exists()
    sh(root, "elmo", "params", "set", "flows.record.push=false")
    git(root, "commit", "-qam", "no remote: records are commits only")
    out = json.loads(repro(root).stdout)
    assert out["recorded"] and out["push"] is None
