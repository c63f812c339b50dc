"""The MLflow pyfunc that serves a model directory through its loader.

A registered version is a pyfunc model whose artifacts hold the whole model directory (weights,
vocabularies, the text pipeline: whatever the stage wrote), whose code snapshot holds the
package that reads it (``code_paths``), and whose ``model_config`` names the loader::

    loader.load(model_dir).predict(items) -> one result per item

For ``elmo-ynat`` the loader is ``elmo.task:Classifier`` (raw headlines in, ``{"label", "probs"}``
out); for ``elmo-bilm`` it is :class:`elmo.registry.embedder.BiLMEmbedder` (token lists in, ELMo
layer vectors out). ``mlflow models serve -m models:/elmo-ynat@champion --env-manager local``
answers ``/invocations`` with ``{"predictions": [...]}``.

The pip requirements are given explicitly (pinned to the versions installed when the model was
logged), so logging never starts a subprocess to infer them and serving works offline.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
import warnings
from pathlib import Path
from typing import Any

with warnings.catch_warnings():  # importing mlflow.pyfunc warns that its own Any hints are not validated
    warnings.filterwarnings("ignore", message=".*Any type hint is inferred as AnyType.*")
    import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from elmo.errors import StageError


def import_loader(spec: str):
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _text(value: Any, column: str, i: int) -> str:
    if isinstance(value, dict) and column in value:  # a record {"text": "..."}
        value = value[column]
    if not isinstance(value, str):
        raise ValueError(f"item {i}: expected a text (a string, or a record with a string {column!r}), "
                         f"got {_shown(value)}")
    return value


def _tokens(value: Any, column: str, i: int) -> list[str]:
    if isinstance(value, dict) and column in value:  # a record {"tokens": [...]}
        value = value[column]
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
        raise ValueError(f"item {i}: expected a list of token strings (or a record with one in {column!r}), "
                         f"got {_shown(value)}")
    return list(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '…' if len(text) > 60 else text}"


def to_items(model_input: Any, column: str, input_type: str) -> list:
    """The pyfunc input as a list of texts (``input_type`` "string") or token lists ("tokens"),
    validated like the Python API: a list whose items are each a text (token list) or a record
    holding one under ``column``; a DataFrame (one column, or one named ``column``) also works.
    Anything else is a ValueError naming the first bad item (nothing is converted to a string)."""
    if isinstance(model_input, pd.DataFrame):
        if column in model_input.columns:
            values = model_input[column].tolist()
        elif model_input.shape[1] == 1:
            values = model_input.iloc[:, 0].tolist()
        else:
            raise ValueError(f"input has columns {list(model_input.columns)}; expected one named {column!r}")
    elif isinstance(model_input, dict):
        if column not in model_input:
            raise ValueError(f"input has keys {list(model_input)}; expected {column!r}")
        values = list(model_input[column])
    elif isinstance(model_input, str):
        if input_type != "string":
            raise ValueError(f"expected a list of token lists, got one string {_shown(model_input)}")
        values = [model_input]
    elif isinstance(model_input, np.ndarray):
        if input_type == "string" and model_input.ndim == 2 and model_input.shape[1] == 1:
            model_input = model_input[:, 0]
        if input_type == "string" and model_input.ndim != 1:
            raise ValueError(f"expected one text per row, got an array of shape {model_input.shape}")
        values = model_input.tolist()
    elif isinstance(model_input, (list, tuple)):
        values = list(model_input)
    else:
        raise ValueError(f"expected a list of {'texts' if input_type == 'string' else 'token lists'}, "
                         f"got {_shown(model_input)}")
    one = _text if input_type == "string" else _tokens
    return [one(value, column, i) for i, value in enumerate(values)]


class DirModel(mlflow.pyfunc.PythonModel):
    """``loader.load(artifacts["model_dir"]).predict(items)`` as an MLflow pyfunc."""

    def load_context(self, context) -> None:
        cfg = dict(context.model_config or {})
        self._column = cfg.get("input_column", "text")
        self._input_type = cfg.get("input_type", "string")
        self._model = import_loader(cfg["loader"]).load(context.artifacts["model_dir"])

    # The type hint is the model's signature: MLflow's scoring server then hands predict the JSON
    # list of ``{"inputs": [...]}`` as it is (no schema converts 5 or null into a string, and
    # ``[]`` is allowed), so the input is checked here, like the Python API checks it. A bad input is
    # an MlflowException INVALID_PARAMETER_VALUE: HTTP 400 with this message, naming the item.
    def predict(self, context, model_input: list[Any], params=None):  # pyfunc signature
        try:
            items = to_items(model_input, self._column, self._input_type)
            results = list(self._model.predict(items)) if items else []
        except (ValueError, TypeError) as err:  # the loader's own checks (e.g. "text 1 is empty") included
            raise MlflowException.invalid_parameter_value(str(err)) from None
        if len(results) != len(items):
            raise ValueError(f"the model answered {len(results)} results for {len(items)} inputs")
        return results


def pinned(requirements: list[str]) -> list[str]:
    """``name==installed version`` for each package name (an error names what is missing)."""
    out = []
    for name in requirements:
        if any(op in name for op in "=<>~!@ "):
            out.append(name)  # already a specifier
            continue
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            raise StageError(f"register.pip_requirements: {name!r} is not installed in this environment") from None
    return out


def log_dir_model(*, name: str, model_dir: Path, loader: str, input_column: str, input_type: str,
                  code_paths: list[Path], pip_requirements: list[str]):
    """Log the directory as a pyfunc model in the active run; returns mlflow's ModelInfo."""
    for p in code_paths:
        if not p.exists():
            raise StageError(f"register: code path {p} does not exist")
    with warnings.catch_warnings():
        # the example is checked by smoke_test(): mlflow's advice to log one does not apply
        warnings.filterwarnings("ignore", message=".*input example.*")
        # list[Any] on purpose: DirModel.predict checks the items itself (MLflow would stringify them)
        warnings.filterwarnings("ignore", message=".*Any type hint is inferred as AnyType.*")
        return _log(name, model_dir, loader, input_column, input_type, code_paths, pip_requirements)


def _log(name, model_dir, loader, input_column, input_type, code_paths, pip_requirements):
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
        artifacts={"model_dir": str(model_dir)},
        code_paths=[str(p) for p in code_paths] or None,
        pip_requirements=pinned(pip_requirements),
        model_config={"loader": loader, "input_column": input_column, "input_type": input_type},
    )  # the signature comes from DirModel.predict's type hint


def smoke_test(model_uri: str, example: list, *, input_column: str, input_type: str) -> list:
    """Load the logged model the way a server does and check its answers to ``example``."""
    try:
        model = mlflow.pyfunc.load_model(model_uri)
        results = list(model.predict(list(example)))
    except Exception as err:  # whatever the loader raises, say which model failed
        raise StageError(f"the logged model {model_uri} does not load or predict: {type(err).__name__}: {err}") from err
    if len(results) != len(example):
        raise StageError(f"{model_uri}: {len(results)} answers for {len(example)} example inputs")
    for i, r in enumerate(results):
        if isinstance(r, dict) and "probs" in r:
            probs = r["probs"]
            total = sum(float(v) for v in probs.values())
            if r.get("label") not in probs or not math.isclose(total, 1.0, abs_tol=1e-3):
                raise StageError(f"{model_uri}: example {i}: label {r.get('label')!r} not among the "
                                 f"probabilities, or they sum to {total:.4f} instead of 1")
    return results
