"""The champion is served by ``mlflow models serve`` and answers raw Korean headlines.

A toy DVC project (tests/test_registry_toy.py) whose train stage makes a tiny but real
``elmo.task.Classifier`` (a random tiny biLM from tests/tiny_elmo.py, a task model fitted on its
18 headlines) is run once through ``dvc repro``; the project's register stage registers it as
version 1 and champion, exactly as ``elmo-ynat`` is registered (loader ``elmo.task:Classifier``,
the ``elmo`` package shipped as code). Then ``mlflow models serve -m models:/toy-ynat@champion
--env-manager local`` is started on 127.0.0.1 (a free port, bounded in time, stopped by the
test) and asked about headlines over HTTP.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from test_registry_toy import MODEL_NAME, env, make_project, pipeline_run

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
START_TIMEOUT_S = 240

REAL_TRAIN = f'''\
"""Train a tiny real elmo.task.Classifier (tiny random biLM + task model) on tiny_elmo's headlines."""
import json, os, sys, tempfile
from pathlib import Path
sys.path.insert(0, {str(TESTS)!r})
import numpy as np, torch
from sklearn.metrics import f1_score
from tiny_elmo import HEADLINES, make_bilm_dir
from elmo.embed.cache import cached_layers
from elmo.embed.elmo import Elmo
from elmo.task.classifier import save_classifier
from elmo.task.model import TaskConfig, TaskModel
from elmo.task.train import TaskData, fit, predict_proba
from elmo.task.words import TaskWords
from elmo.text import Tokenizer

tokenizer = Tokenizer("mecab")
labels = sorted(HEADLINES)
texts = [(t, lab) for lab, ts in HEADLINES.items() for t in ts]
with tempfile.TemporaryDirectory() as tmp:
    bilm_dir = make_bilm_dir(Path(tmp), tokenizer)
    elmo = Elmo.load(bilm_dir)
    tokens = elmo.tokenize([t for t, _ in texts])
    words = TaskWords.build(tokens)
    y = np.array([labels.index(lab) for _, lab in texts])
    cache = cached_layers(elmo, tokens, Path(tmp) / "cache", model_dir=bilm_dir, progress=False)
    data = TaskData([words.ids(t) for t in tokens], y, cache)
    torch.manual_seed(0)
    model = TaskModel(TaskConfig(n_classes=len(labels), vocab_size=len(words), elmo_layers=elmo.n_layers,
                                 elmo_dim=elmo.dim, word_dim=8, hidden=8, dropout=0.0, elmo_dropout=0.0))
    fit(model, data, data, labels, batch_size=6, lr=0.02, weight_decay=0.0, max_epochs=40, patience=40,
        grad_clip=5.0, seed=0, log=lambda s: None)
    pred = predict_proba(model, data).argmax(1)
    save_classifier("models/toy", model=model, labels=labels, words=words, pipeline=elmo.pipeline,
                    max_tokens=64, bilm_dir=bilm_dir, layer_dtype="float16")
os.makedirs("metrics", exist_ok=True)
with open("metrics/toy.json", "w") as fh:
    json.dump({{"dev": {{"macro_f1": float(f1_score(y, pred, average="macro"))}}}}, fh)
'''

HEADLINES = {"손흥민 시즌 첫 골 기록": "스포츠", "국회 예산안 통과": "정치", "인공지능 반도체 개발 성공": "IT과학"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow models serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    pytest.fail(f"mlflow models serve did not answer /ping within {START_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server and the uvicorn it started (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    try:  # uvicorn may outlive its parent briefly
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.network
@pytest.mark.timeout(900)
def test_champion_served_with_mlflow_models_serve_answers_headlines(tmp_path: Path) -> None:
    from elmo.task import Classifier

    root, _remote, registry = make_project(tmp_path, train=REAL_TRAIN, model={
        "loader": "elmo.task:Classifier", "code_paths": [str(REPO / "elmo")],
        "metric": "dev.macro_f1", "example": list(HEADLINES)})
    pipeline_run(root, rows=3, quality=0.5, message="run 1")
    report = json.loads((root / "metrics" / "register.json").read_text())["models"]["toy"]
    assert report["version"] == 1 and report["champion"] == 1

    local = Classifier.load(root / "models" / "toy").predict(list(HEADLINES))
    assert [r["label"] for r in local] == list(HEADLINES.values())  # the tiny model learned them

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve_env = env()
    serve_env["MLFLOW_TRACKING_URI"] = f"sqlite:///{registry / 'mlflow.db'}"
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}@champion", "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(port), "--timeout", "120"],
            cwd=tmp_path, env=serve_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_up(url, proc, log)
        r = httpx.post(f"{url}/invocations", json={"inputs": list(HEADLINES)}, timeout=120)
        assert r.status_code == 200, r.text
        served = r.json()["predictions"]
        assert [p["label"] for p in served] == list(HEADLINES.values())
        for got, want in zip(served, local):
            assert set(got["probs"]) == set(want["probs"])
            assert math.isclose(sum(got["probs"].values()), 1.0, abs_tol=1e-5)
            assert all(math.isclose(got["probs"][k], want["probs"][k], abs_tol=1e-5) for k in want["probs"])
        # records with a string text; an empty list answers an empty list
        r = httpx.post(f"{url}/invocations", json={"inputs": [{"text": "손흥민 시즌 첫 골 기록"}]}, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"][0]["label"] == "스포츠"
        r = httpx.post(f"{url}/invocations", json={"inputs": []}, timeout=120)
        assert r.status_code == 200 and r.json() == {"predictions": []}, r.text
        # what is not a text is refused, naming the item (nothing is turned into a string)
        for body in ({"inputs": ["ok", 5]}, {"inputs": [None]}, {"inputs": [True]}, {"inputs": 5}):
            r = httpx.post(f"{url}/invocations", json=body, timeout=120)
            assert r.status_code == 400, (body, r.text)
        assert "item 1: expected a text" in httpx.post(f"{url}/invocations", json={"inputs": ["ok", 5]},
                                                       timeout=120).json()["message"]
        # a headline with no tokens is refused with the classifier's message naming it; the server keeps serving
        r = httpx.post(f"{url}/invocations", json={"inputs": ["국회", "   "]}, timeout=120)
        assert r.status_code == 400 and "text 1 is empty" in r.json()["message"]
        r = httpx.post(f"{url}/invocations", json={"inputs": ["국회 예산안 통과"]}, timeout=120)
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] == "정치"
    finally:
        stop(proc)
    assert proc.poll() is not None
