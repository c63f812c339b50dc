"""The params models' code defaults and params.yaml say the same thing.

params.yaml may leave a key out (the code default applies: e.g. the presets only spell out what
they set); where it has a key, its value equals the code default unless the key is declared in
DIFFERS below, with the reason. So a default changed on one side only fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from elmo.params import Params

REPO = Path(__file__).resolve().parents[1]

# dotted key -> why params.yaml deliberately differs from the code default. Keep it small.
DIFFERS: dict[str, str] = {
    "register.models.task": "the entry that stands for every task's model: the code's defaults show it expanded, "
                            "one entry per task of finetune.tasks (register.models.ynat)",
}


def differences(code: Any, given: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """dotted key -> (code default, params.yaml value) wherever params.yaml sets a different value."""
    if isinstance(code, dict) and isinstance(given, dict):
        out: dict[str, tuple[Any, Any]] = {}
        for key, value in given.items():
            dotted = f"{prefix}{key}"
            if key not in code:
                out[dotted] = ("<no such key>", value)
            else:
                out.update(differences(code[key], value, dotted + "."))
        return out
    return {} if code == given else {prefix.rstrip("."): (code, given)}


def code_defaults() -> dict:
    return Params().model_dump(mode="json")


def params_yaml() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


def test_code_defaults_equal_params_yaml() -> None:
    diff = differences(code_defaults(), params_yaml())
    undeclared = {k: v for k, v in diff.items() if k not in DIFFERS}
    assert not undeclared, f"code default != params.yaml (change one side, or declare it in DIFFERS): {undeclared}"
    stale = sorted(set(DIFFERS) - set(diff))
    assert not stale, f"DIFFERS names keys that no longer differ: {stale}"


def test_defaults_check_fails_when_one_side_changes() -> None:
    code, given = code_defaults(), params_yaml()
    assert set(differences(code, given)) == set(DIFFERS)
    # params.yaml changed alone
    given["finetune"]["train"]["lr"] = given["finetune"]["train"]["lr"] * 2
    assert "finetune.train.lr" in differences(code, given)
    # a code default changed alone (as if TrainParams said batch_size=64 again)
    given = params_yaml()
    code["finetune"]["train"]["batch_size"] = 64
    assert differences(code, given)["finetune.train.batch_size"] == (64, 128)
    # a key params.yaml leaves out follows the code default: no drift possible there (the built-in
    # presets are code only, elmo/params/presets.py); an override in params.yaml that differs is flagged
    assert given["pretrain"]["presets"] == {}
    given["pretrain"]["presets"] = {"small": {"train": {"max_steps": 2000}}}
    assert "pretrain.presets.small.train.max_steps" not in differences(code_defaults(), given)
    given["pretrain"]["presets"] = {"small": {"train": {"max_steps": 3000}}}
    assert differences(code_defaults(), given)["pretrain.presets.small.train.max_steps"] == (2000, 3000)


def test_retry_params_are_one_section_matching_the_retry_policy() -> None:
    """crawl and finetune.task share one definition of the retry keys, and its defaults are the
    downloader's (elmo.crawl.RetryPolicy): one policy, one set of defaults."""
    from dataclasses import fields

    from elmo.crawl import RetryPolicy
    from elmo.params.crawl import CrawlParams
    from elmo.params.finetune import TaskDataParams
    from elmo.params.retry import RetryParams

    assert issubclass(CrawlParams, RetryParams) and issubclass(TaskDataParams, RetryParams)
    defaults = RetryParams().model_dump()
    assert defaults == {f.name: f.default for f in fields(RetryPolicy)}
    assert RetryPolicy.from_params(RetryParams()) == RetryPolicy()
