"""finetune.tasks in params (elmo/params/finetune.py select_task): one task selected per stage run, the
others validated too, per-task overrides, the per-task paths and registered models, and the former
single ``finetune.task`` (read as a one-task mapping; with ``tasks`` beside it, an error saying how to move it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from elmo.cli import app
from elmo.params import ParamsError, parse_params

SENTIMENT = {"source": "src", "train_file": "train.tsv", "dev_file": "dev.tsv", "format": "tsv",
             "text_field": "document", "train": {"max_epochs": 5}}


def two_tasks() -> dict:
    return {"finetune": {"tasks": {"ynat": {}, "sentiment": dict(SENTIMENT)}, "train": {"lr": 0.01}}}


def test_several_tasks_select_one_with_its_paths_and_overrides() -> None:
    ynat = parse_params(two_tasks())  # the first task by default
    assert ynat.finetune.task.name == "ynat" and ynat.finetune.train.max_epochs == 20
    s = parse_params(two_tasks(), task="sentiment")
    f = s.finetune
    assert (f.task.name, f.task.source, f.task.format, f.task.text_field) == ("sentiment", "src", "tsv", "document")
    assert f.task.label_field == "label"  # a key the entry leaves out: its default
    assert (f.train.max_epochs, f.train.lr) == (5, 0.01)  # the override merged over the shared settings
    assert (f.task.data_dir, f.out_dir, f.metrics, f.comparison, f.comparison_table, f.plots_dir, f.adapt.out_dir) == (
        "data/task/sentiment", "models/sentiment", "metrics/finetune/sentiment.json",
        "metrics/finetune/sentiment_comparison.json", "metrics/finetune/sentiment_comparison.md",
        "plots/finetune/sentiment", "models/bilm_sentiment")
    assert list(f.tasks) == ["ynat", "sentiment"]
    models = s.register.models
    assert list(models) == ["bilm", "ynat", "sentiment"] and s.register.primary == "ynat"
    assert (models["sentiment"].name, models["sentiment"].dvc_stage, models["sentiment"].model_dir,
            models["sentiment"].metrics_file) == ("elmo-sentiment", "finetune@sentiment", "models/sentiment",
                                                  "metrics/finetune/sentiment.json")


@pytest.mark.parametrize(("data", "task", "message"), [
    (two_tasks(), "nope", "finetune.tasks: no task 'nope' (tasks: ynat, sentiment)"),
    ({"finetune": {"tasks": {"ynat": {}, "s": {"formt": "tsv"}}}}, None, "finetune: tasks.s.formt: unknown key"),
    ({"finetune": {"tasks": {"ynat": {}, "s": {"out_dir": "x"}}}}, None, "follows the task's name"),
    ({"finetune": {"tasks": {"ynat": {}, "s": {"format": "xml"}}}}, None, "finetune.tasks.s.format"),
    ({"finetune": {"tasks": {"ynat": {}, "s": {"train": {"lr": -1}}}}}, None, "finetune.train.lr"),
    ({"finetune": {"tasks": {"ynat": {}, "s": {"data_dir": "/abs"}}}}, None, "finetune.task.data_dir"),
    ({"finetune": {"tasks": {}}}, None, "at least one task"),
    ({"finetune": {"tasks": {"ynat": {}, "bilm": {}}}}, None, "register.models.bilm"),
    ({"finetune": {"tasks": {"a": {}, "b": {}}}}, None, "register.primary: 'ynat' is not a model"),
])
def test_several_tasks_errors_name_the_task_and_key(data, task, message) -> None:
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_params(data, task=task)


def test_several_tasks_former_single_task_is_one_task_or_an_error_saying_how_to_move_it() -> None:
    p = parse_params({"finetune": {"task": {"name": "news", "source": "src", "text_field": "headline"}}})
    assert list(p.finetune.tasks) == ["news"] and p.finetune.task.text_field == "headline"
    assert p.finetune.out_dir == "models/news" and p.register.primary == "news"  # primary follows the one task
    assert p.register.models["news"].name == "elmo-news"
    with pytest.raises(ParamsError, match="move its keys to finetune.tasks.<name>"):
        parse_params({"finetune": {"task": {"name": "news"}, "tasks": {"ynat": {}}}})


def test_several_tasks_stage_commands_need_task_when_there_are_several(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump(two_tasks(), sort_keys=False), encoding="utf-8")
    for stage in ("fetch_task", "finetune"):
        res = CliRunner().invoke(app, [stage])
        assert res.exit_code == 2 and "finetune.tasks has 2 tasks (ynat, sentiment): name one with --task" in res.output
    res = CliRunner().invoke(app, ["fetch_task", "--task", "nope"])
    assert res.exit_code == 2 and "no task 'nope'" in res.output
    res = CliRunner().invoke(app, ["predict", "--task", "sentiment", "텍스트"])  # no model yet: says where
    assert res.exit_code == 2 and "models/sentiment" in res.output
