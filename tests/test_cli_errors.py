"""What used to be a traceback is one line naming the file or key, with exit status 2; output paths
stay inside the workspace unless the user says otherwise; --help reads as plain text (issue 12)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from elmo.cli import app
from elmo.params import ParamsError, load_params, parse_params, set_params


def invoke(*args: str):
    res = CliRunner().invoke(app, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    return res


def one_error_line(res, *needles: str) -> str:
    assert res.exit_code == 2, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, res.output
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


# --- params files --------------------------------------------------------------------------------
@pytest.mark.parametrize("content, needles", [
    (b"seed: 1\n\xff\xfe crawl:\n", ["not UTF-8"]),
    (b"", ["empty (no sections)"]),
    (b"# only a comment\n", ["empty (no sections)"]),
    (b"seed: 1\ncrawl:\n  retries: 2\n  retries: 3\n", ["duplicate key 'retries' (first given on line 3)", "line 4"]),
    (b"seed: 1\nseed: 2\n", ["duplicate key 'seed'"]),
    (b"vocab:\n  min_count: true\n", ["vocab.min_count", "not a boolean"]),
    (b"crawl:\n  timeout_s: .inf\n", ["crawl.timeout_s", "finite"]),
    (b"finetune:\n  tasks:\n    ynat:\n      timeout_s: .nan\n", ["finetune.tasks.ynat.timeout_s", "finite"]),
    (b"finetune:\n  task:\n    timeout_s: .nan\n", ["finetune.tasks.ynat.timeout_s", "finite"]),  # the former form
    (b"crawl:\n  retries: '3'\n", ["crawl.retries", "not a string"]),
    (b"seed: -1\n", ["seed", "greater than or equal to 0"]),
    (b"seed: 4294967296\n", ["seed", "less than or equal to"]),
    (b"crawl: [1, 2\n", ["not valid YAML"]),
])
def test_bad_params_file_is_one_line_naming_file_and_key(tmp_path, content, needles) -> None:
    f = tmp_path / "params.yaml"
    f.write_bytes(content)
    line = one_error_line(invoke("params", "show", "--params", str(f)), str(f), *needles)
    assert line.count(str(f)) == 1


def test_params_path_that_is_a_directory(tmp_path) -> None:
    one_error_line(invoke("params", "show", "--params", str(tmp_path)), str(tmp_path), "not a file")
    one_error_line(invoke("crawl", "--params", str(tmp_path)), "not a file")


def test_params_set_refuses_duplicates_and_bad_values_and_keeps_the_file(tmp_path) -> None:
    f = tmp_path / "params.yaml"
    f.write_text("seed: 1\nseed: 2\n")
    with pytest.raises(ParamsError, match="duplicate key 'seed'"):
        set_params(f, ["crawl.retries=2"])
    f.write_text("seed: 1\n")
    one_error_line(invoke("params", "set", "--params", str(f), "vocab.min_count=true"), "vocab.min_count")
    one_error_line(invoke("params", "set", "--params", str(f), "seed.x=1"), "seed is not a section")
    assert f.read_text() == "seed: 1\n"


def test_seed_is_checked_before_any_mlflow_run_opens(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("seed: -1\n")
    one_error_line(invoke("finetune"), "params.yaml: seed")
    assert not Path("mlflow.db").exists() and not Path("mlartifacts").exists()


# --- paths ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("section, key", [
    ({"crawl": {"out_dir": "../elsewhere"}}, "crawl.out_dir"),
    ({"crawl": {"out_dir": "/tmp/raw"}}, "crawl.out_dir"),
    ({"crawl": {"out_dir": "data/../../x"}}, "crawl.out_dir"),
    ({"clean": {"quarantine": "~/q.jsonl"}}, "clean.quarantine"),
    ({"finetune": {"tasks": {"ynat": {"data_dir": "../../../../x"}}}}, "finetune.task.data_dir"),
    ({"finetune": {"out_dir": "/abs/models"}}, "finetune.out_dir"),
    ({"finetune": {"plots_dir": "../plots"}}, "finetune.plots_dir"),
    ({"pretrain": {"checkpoint_dir": "/var/ckpt"}}, "pretrain.checkpoint_dir"),
    ({"register": {"report": "../r.json"}}, "register.report"),
])
def test_output_paths_outside_the_workspace_are_refused_unless_allowed(section, key) -> None:
    with pytest.raises(ParamsError, match=rf"{key}: .* allow_paths_outside_workspace: true"):
        parse_params(section)
    assert parse_params({**section, "allow_paths_outside_workspace": True})


def test_paths_inside_the_workspace_are_fine() -> None:
    p = parse_params({"crawl": {"out_dir": "data/./raw/../raw2"}, "finetune": {"bilm_dir": "/models/elsewhere"}})
    assert p.crawl.out_dir == "data/./raw/../raw2" and p.finetune.bilm_dir == "/models/elsewhere"  # an input


@pytest.mark.parametrize("name", ["../../../../x.json", "/etc/passwd", "sub/train.json", "..", "a\\b.json", ""])
def test_task_file_names_are_names_not_paths(name) -> None:
    for key in ("train_file", "dev_file"):
        with pytest.raises(ParamsError, match=rf"finetune.tasks.ynat.{key}"):
            parse_params({"finetune": {"tasks": {"ynat": {key: name}}}})


@pytest.mark.parametrize("name", ["../x", "YNAT", "a b", "", "x/y"])
def test_task_names_are_safe_path_components(name) -> None:
    with pytest.raises(ParamsError, match=rf"finetune.tasks.{re.escape(name)}.name"):
        parse_params({"finetune": {"tasks": {name: {}}}})


def test_fetch_task_refuses_a_data_dir_inside_its_local_source(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "t.json").write_text('[{"title": "a", "label": "x"}]')
    before = sorted(p.name for p in src.iterdir())
    Path("params.yaml").write_text(yaml.safe_dump({"finetune": {"task": {
        "source": "src", "data_dir": "src/copy", "train_file": "t.json", "dev_file": "t.json"}}}))
    one_error_line(invoke("fetch_task"), "finetune.task.data_dir", "lies inside", "finetune.task.source")
    assert sorted(p.name for p in src.iterdir()) == before


# --- task data -----------------------------------------------------------------------------------
def test_csv_with_an_unclosed_quote_is_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    good = "title,label\n국회 예산안,정치\n손흥민 골,스포츠\n"
    (src / "train.csv").write_text(good, encoding="utf-8")
    (src / "dev.csv").write_text(good + '"열린 따옴표,정치\n' + "x,y\n" * 50_000, encoding="utf-8")
    Path("params.yaml").write_text(yaml.safe_dump({"finetune": {"task": {
        "name": "csvtask", "source": "src", "train_file": "train.csv", "dev_file": "dev.csv", "id_field": None}}}))
    one_error_line(invoke("fetch_task"), "dev.csv", "line", "not valid CSV", "unclosed quote")
    assert not (tmp_path / "data/task/csvtask/dev.csv").exists()


# --- serve-dir -----------------------------------------------------------------------------------
def test_serve_dir_port_out_of_range_or_in_use(tmp_path) -> None:
    res = invoke("serve-dir", str(tmp_path), "--port", "70000")
    assert res.exit_code == 2 and "--port" in res.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        one_error_line(invoke("serve-dir", str(tmp_path), "--port", str(port)), f"--port {port}", "choose another")


# --- help ----------------------------------------------------------------------------------------
def test_help_is_plain_text_and_finetune_names_the_configurable_task() -> None:
    top = invoke("--help").output
    assert "`" not in top and "--params" in top
    assert "`" not in invoke("rollback", "--help").output
    ft = " ".join(invoke("finetune", "--help").output.split())
    assert "finetune.task" in ft


def test_repository_params_have_no_duplicates_and_derive_task_paths(repo_root) -> None:
    p = load_params(repo_root / "params.yaml")
    assert (p.finetune.task.data_dir, p.finetune.out_dir) == ("data/task/ynat", "models/ynat")
    assert p.register.models["ynat"].name == "elmo-ynat" and p.register.models["ynat"].model_dir == "models/ynat"
    assert json.loads(json.dumps(p.model_dump()))["allow_paths_outside_workspace"] is False
