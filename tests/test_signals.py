"""Signals leave a true record (issue 22): SIGTERM stops a stage like Ctrl-C (exit 130, temporaries
removed, worker processes ended, the MLflow run not left RUNNING); serve-dir stops on Ctrl-C.

Each test runs the real command in a subprocess and is bounded in time. (kill -9 mid-crawl:
tests/test_crawl.py::test_signal_kill9_mid_crawl_leaves_incomplete_and_clean_refuses.)
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import polars as pl
import pytest
import yaml

from elmo.cli import run_stage
from elmo.errors import StageError, signals_as_interrupt
from elmo.params import load_params
from elmo.text import Tokenizer
from elmo.text.parallel import stop_workers
from elmo.tracking import start_run
from elmo.workspace_lock import stage_lock
from helpers.synthetic import random_corpus, word_corpus, write_workspace
from test_finetune import klue_files, workspace
from test_tokenize_stage import TEXTS, write_petitions
from tiny_elmo import make_bilm_dir

REPO = Path(__file__).resolve().parents[1]
CLI = "import sys; from elmo.cli import app; sys.argv[0] = 'elmo'; app()"


def elmo(root: Path, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    # SIGINT may be ignored when the tests run as a background job; a user's terminal delivers it.
    code = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); " + CLI
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=root, env=env, stdout=subprocess.PIPE,
                            text=True, **kw)


def children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is ``pid`` (from /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(cond, proc: subprocess.Popen, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return
        if proc.poll() is not None:
            raise AssertionError(f"ended before {what}: {proc.communicate()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}: {proc.communicate()}")


def test_signal_sigterm_mid_tokenize_exits_130_no_temp_dir_no_worker_left(tmp_path: Path) -> None:
    # Enough text that two spawned workers are busy for a long while (the test stops them early).
    rows = TEXTS * 4000
    splits = (["train", "valid", "test"] * len(rows))[:len(rows)]
    write_petitions(tmp_path / "data/interim/petitions.parquet", rows, splits,
                    petition_idx=list(range(len(rows))))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"tokenize": {"workers": 2}}))
    processed = tmp_path / "data/processed"
    proc = elmo(tmp_path, "tokenize")
    workers: set[int] = set()
    try:
        def running() -> bool:
            workers.update(children(proc.pid))
            # the spawn machinery adds a resource tracker: wait for both workers besides it
            return len(workers) >= 3 and any(processed.glob(".sentences.*.tmp"))
        wait_until(running, proc, 120, "the workers and the temporary output")
        time.sleep(1.5)  # the workers are analysing shards now
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == ["error: tokenize: interrupted (SIGTERM); nothing half-written was kept (its outputs are as "
                      "they were before it started); rerun it to go on"], err
    assert "Traceback" not in err
    assert sorted(p.name for p in processed.iterdir()) == []  # no .sentences.*.tmp/, no output
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in workers if alive(pid)] == []


def test_signal_serve_dir_stops_on_ctrl_c_and_sigterm(tmp_path: Path) -> None:
    pl.DataFrame({"a": [1]}).write_parquet(tmp_path / "x.parquet")  # the issue's case: polars' threads exist
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = elmo(tmp_path, "serve-dir", str(tmp_path), "--port", "0")
        try:
            assert "serving" in proc.stderr.readline()
            time.sleep(0.3)
            proc.send_signal(sig)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, proc.stderr.read()
        assert "Traceback" not in proc.stderr.read()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_handler_turns_sigterm_into_keyboard_interrupt_once(sig) -> None:
    before = signal.getsignal(signal.SIGTERM)
    sigint = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with pytest.raises(KeyboardInterrupt), signals_as_interrupt() as seen:
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler raises well before this ends
        assert seen.received == signal.Signals(sig).name
        assert signal.getsignal(signal.SIGTERM) is before  # restored
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, sigint)


def _running(pids: list[int], within_s: float) -> list[int]:
    """Those of ``pids`` still running (not gone, not a zombie) after waiting up to ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        alive = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                continue
            if state not in ("Z", "X"):
                alive.append(pid)
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def test_signal_stop_workers_ends_busy_workers_at_once() -> None:

    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    futures = [pool.submit(time.sleep, 60) for _ in range(4)]
    procs = []
    deadline = time.monotonic() + 60
    while len(procs) < 2 and time.monotonic() < deadline:
        procs = list(pool._processes.values())
        time.sleep(0.05)
    t0 = time.monotonic()
    stop_workers(pool)
    assert time.monotonic() - t0 < 15  # not the 60 s the tasks would take
    # no worker runs any more, as the kernel sees it (Process.is_alive can say True for a moment while
    # the pool's own manager thread is reaping the same child: waitpid then fails with ECHILD)
    assert _running([p.pid for p in procs], within_s=5) == []
    # queued tasks are cancelled, running ones fail (the pool is broken): none is left waiting
    deadline = time.monotonic() + 20
    while not all(f.done() for f in futures) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [f for f in futures if not f.done()] == []


def _runs(root: Path) -> list[tuple[str, str]]:
    """(run id, status) of every MLflow run in the workspace's store (read directly, no MLflow import)."""
    db = root / "mlflow.db"
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as con:
        try:
            return con.execute("select run_uuid, status from runs order by start_time").fetchall()
        except sqlite3.OperationalError:  # the schema is still being created
            return []


def _finetune(root: Path, log: Path) -> subprocess.Popen:
    """``elmo finetune`` with its stderr in ``log`` (the test reads it, so it never blocks a pipe)."""
    with open(log, "w") as fh:
        return elmo(root, "finetune", stderr=fh)


def _wait_training(root: Path, proc: subprocess.Popen, log: Path) -> str:
    """Wait until the task model trains (inside the MLflow run); the id of the RUNNING run."""
    wait_until(lambda: "training main" in log.read_text(), proc, 240, f"training to start ({log})")
    running = [rid for rid, status in _runs(root) if status == "RUNNING"]
    assert len(running) == 1, (_runs(root), log.read_text())
    return running[0]


def test_signal_sigterm_and_kill9_mid_finetune_leave_no_running_mlflow_run(tmp_path, repo_root) -> None:

    root = tmp_path / "ws"
    root.mkdir()
    bilm = make_bilm_dir(tmp_path / "bilm", Tokenizer("mecab"))
    klue_files(root / "src")
    # long enough to be stopped mid-training: many epochs, no early stop, no comparisons
    pfile = workspace(root, repo_root, bilm, compare=[])
    params = yaml.safe_load(pfile.read_text(encoding="utf-8"))
    params["finetune"]["train"].update(max_epochs=100_000, patience=100_000)
    pfile.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    fetch = elmo(root, "fetch_task")
    assert fetch.wait(timeout=120) == 0, fetch.communicate()

    first = _finetune(root, tmp_path / "first.log")
    try:
        run_id = _wait_training(root, first, tmp_path / "first.log")
        # a second finetune meanwhile is refused in one line (one run never stores the other's files)
        second = elmo(root, "finetune")
        _, err = second.communicate(timeout=240)
        assert second.returncode == 2, err
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "another `elmo finetune` is running in this workspace" in errors[0], err
        assert first.poll() is None, (tmp_path / "first.log").read_text()
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    err = (tmp_path / "first.log").read_text()
    assert first.returncode == 130, err
    assert "error: finetune: interrupted (SIGTERM)" in err and "Traceback" not in err
    assert dict(_runs(root))[run_id] == "KILLED"

    third = _finetune(root, tmp_path / "third.log")
    try:
        killed_id = _wait_training(root, third, tmp_path / "third.log")
        third.send_signal(signal.SIGKILL)  # no cleanup possible: the run stays RUNNING ...
        third.wait(timeout=30)
    finally:
        if third.poll() is None:
            third.kill()
    assert dict(_runs(root))[killed_id] == "RUNNING"
    with start_run(load_params(pfile).mlflow, root, stage="finetune"):  # ... until the next run of the stage
        pass
    statuses = dict(_runs(root))
    assert statuses[killed_id] == "KILLED" and "RUNNING" not in statuses.values(), statuses


def test_signal_sigterm_mid_pretrain_exits_130_and_ends_the_mlflow_run_killed(tmp_path) -> None:
    sents = word_corpus(random_corpus(160, 80, min_len=2, max_len=14, seed=9))
    write_workspace(tmp_path, {"train": sents[:120], "valid": sents[120:140], "test": sents[140:]})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"pretrain": {
        "preset": "tiny", "trainer": {"accelerator": "cpu", "devices": 1, "threads": 1},
        "presets": {"tiny": {"train": {"max_steps": 1_000_000, "val_every_steps": 1_000_000}}}}}))
    log = tmp_path / "pretrain.log"
    with open(log, "w") as fh:
        proc = elmo(tmp_path, "pretrain", stderr=fh)
    try:
        wait_until(lambda: any(status == "RUNNING" for _, status in _runs(tmp_path)), proc, 240,
                   "a RUNNING MLflow run")
        time.sleep(3)  # training now
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = log.read_text()
    assert proc.returncode == 130, err
    assert "error: pretrain: interrupted (SIGTERM)" in err and "Traceback" not in err
    assert [status for _, status in _runs(tmp_path)] == ["KILLED"]
    assert not (tmp_path / "models/bilm").exists()


def test_signal_kill9_leftover_of_tokenize_is_removed_by_the_next_run(tmp_path: Path) -> None:
    write_petitions(tmp_path / "data/interim/petitions.parquet")
    leftover = tmp_path / "data/processed/.sentences.k1ll3d.tmp"  # what a kill -9 mid-run leaves
    leftover.mkdir(parents=True)
    (leftover / "train.parquet").write_bytes(b"half written")
    other = tmp_path / "data/processed/.other.abc.tmp"  # not tokenize's: left alone
    other.write_bytes(b"x")
    report = run_stage("tokenize", str(_params_file(tmp_path)), tmp_path)
    assert report["leftovers_removed"] == 1
    assert sorted(p.name for p in (tmp_path / "data/processed").iterdir()) == [".other.abc.tmp", "sentences"]


def test_signal_a_second_tokenize_meanwhile_is_refused_in_one_line(tmp_path: Path) -> None:
    write_petitions(tmp_path / "data/interim/petitions.parquet")
    with stage_lock(tmp_path, "tokenize"):  # as a running `elmo tokenize` holds it
        with pytest.raises(StageError, match="another `elmo tokenize` is running in this workspace"):
            run_stage("tokenize", str(_params_file(tmp_path)), tmp_path)
    assert not (tmp_path / "data/processed").exists()


def _params_file(root: Path) -> Path:
    (root / "params.yaml").write_text(yaml.safe_dump({"tokenize": {"workers": 1}}))
    return root / "params.yaml"
