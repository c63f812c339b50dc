"""The served pyfunc checks its input like the Python API (issue 22): a list of texts (or records with
a string ``text``); anything else is HTTP 400 naming the bad item, ``[]`` answers ``[]``, and one
empty headline is named by its index.

The model is logged exactly as ``elmo register`` logs it (log_dir_model, model-from-code), with a
stand-in loader (EchoClassifier, below) so no training is needed, and asked through MLflow's own
scoring-server function (``mlflow.pyfunc.scoring_server.invocations``: what ``mlflow models serve``
answers /invocations with), in-process and bounded in time. tests/test_serve.py serves a real
classifier over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server

from elmo.registry.pyfunc import log_dir_model, to_items

REPO = Path(__file__).resolve().parents[1]


class EchoClassifier:
    """A loader like elmo.task:Classifier: ``load(dir).predict(texts)``; refuses an empty text the way
    Classifier does (``text i is empty``)."""

    @classmethod
    def load(cls, directory):
        return cls()

    def predict(self, texts):
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text {i}: expected a string, got {type(t).__name__}")
            if not t.strip():
                raise ValueError(f"text {i} is empty (no tokens after analysis): {t!r}")
        return [{"label": "정치", "probs": {"정치": 1.0}, "text": t} for t in texts]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pyfunc")
    (tmp / "model").mkdir()
    (tmp / "model" / "config.json").write_text("{}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    exp = mlflow.create_experiment("pyfunc-input", artifact_location=(tmp / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp):
        info = log_dir_model(name="m", model_dir=tmp / "model", loader="test_pyfunc_input:EchoClassifier",
                             input_column="text", input_type="string", code_paths=[REPO / "elmo"],
                             pip_requirements=[])
    model = mlflow.pyfunc.load_model(info.model_uri)
    return model


def ask(model, body) -> tuple[int, dict]:
    """(HTTP status, JSON answer) as the scoring server gives them."""
    try:
        r = scoring_server.invocations(json.dumps(body), "application/json", model,
                                       model.metadata.get_input_schema())
    except MlflowException as err:
        return err.get_http_status_code(), {"message": err.message}
    return r.status, json.loads(r.response)


@pytest.mark.parametrize("body, needle", [
    ({"inputs": ["ok", 5]}, "item 1: expected a text (a string, or a record with a string 'text'), got int 5"),
    ({"inputs": [None]}, "item 0: expected a text"),
    ({"inputs": [True]}, "item 0: expected a text"),
    ({"inputs": 5}, "Expected list, but got int"),
    ({"inputs": [["a"]]}, "item 0: expected a text"),
    ({"inputs": [{"text": 5}]}, "item 0: expected a text"),
    ({"inputs": [{"title": "a"}]}, "item 0: expected a text"),
    ({"inputs": ["국회", "   "]}, "text 1 is empty"),
])
def test_served_pyfunc_answers_400_naming_the_bad_item(served, body, needle) -> None:
    status, answer = ask(served, body)
    assert status == 400, answer
    assert needle in answer["message"], answer


def test_served_pyfunc_answers_texts_records_and_an_empty_list(served) -> None:
    assert ask(served, {"inputs": []}) == (200, {"predictions": []})
    status, answer = ask(served, {"inputs": ["국회 예산안 통과", {"text": "손흥민 골"}]})
    assert status == 200
    assert [p["text"] for p in answer["predictions"]] == ["국회 예산안 통과", "손흥민 골"]
    # the Python API: a list, or a one-column DataFrame
    assert served.predict(["가"])[0]["label"] == "정치"
    with pytest.raises(MlflowException, match="item 0: expected a text"):
        served.predict([None])


def test_token_list_input_is_checked_item_by_item() -> None:
    tokens = [["국회", "예산안"], ["골"]]
    assert to_items(tokens, "tokens", "tokens") == tokens
    assert to_items([{"tokens": ["국회"]}, ("골",)], "tokens", "tokens") == [["국회"], ["골"]]
    assert to_items([], "tokens", "tokens") == []
    for bad, i in ((["국회"], 0), ([["a"], ["b", 5]], 1), ([["a"], None], 1), ("국회 예산안", None)):
        with pytest.raises(ValueError, match=f"item {i}:" if i is not None else "got one string"):
            to_items(bad, "tokens", "tokens")
