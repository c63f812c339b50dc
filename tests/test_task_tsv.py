"""A second labeled dataset through params alone: a 3-class TSV sentiment task (tests/fixtures/sentiment)
fetched and finetuned end to end (tiny random biLM), landing under its own task-named paths beside YNAT."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from elmo.cli import app
from elmo.errors import StageError
from elmo.task.data import read_records
from test_finetune import klue_files
from tiny_elmo import make_bilm_dir

FIXTURE = Path(__file__).parent / "fixtures" / "sentiment"
SENTIMENT = {  # README "A new dataset": exactly these keys
    "name": "sentiment", "source": "src/sentiment", "train_file": "train.tsv", "dev_file": "dev.tsv",
    "format": "tsv", "text_field": "document", "label_field": "label", "id_field": "id",
}


def write_params(root: Path, repo_root: Path, bilm: Path, task: dict) -> Path:
    params = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    f = params["finetune"]
    name = task.get("name", "ynat")  # one task at a time: this one replaces the default
    f["tasks"] = {name: {**f["tasks"]["ynat"], **{k: v for k, v in task.items() if k != "name"}}}
    f["bilm_dir"] = str(bilm)
    f["model"].update(word_dim=8, hidden=8, word_min_count=1)
    f["train"].update(batch_size=4, lr=0.01, max_epochs=2, patience=2, threads=1)
    f["tfidf"].update(min_df=1)
    f["adapt"].update(max_steps=4, batch_tokens=128, heldout_sentences=2)
    f["compare"] = ["tfidf_lr", "elmo"]
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory, repo_root):
    from elmo.cli import run_stage
    from elmo.text import Tokenizer

    root = tmp_path_factory.mktemp("ws")
    bilm = make_bilm_dir(tmp_path_factory.mktemp("bilm"), Tokenizer("mecab"))
    klue_files(root / "src" / "ynat")
    shutil.copytree(FIXTURE, root / "src" / "sentiment")
    ynat = write_params(root, repo_root, bilm, {"source": "src/ynat"})
    run_stage("fetch_task", str(ynat), root)
    ynat_files = {p.name: p.read_bytes() for p in (root / "data/task/ynat").iterdir()}
    pfile = write_params(root, repo_root, bilm, SENTIMENT)
    fetched = run_stage("fetch_task", str(pfile), root)
    report = run_stage("finetune", str(pfile), root)
    return root, pfile, fetched, report, ynat_files


def test_tsv_task_is_fetched_under_its_own_name(two_tasks) -> None:
    root, _, fetched, _, ynat_files = two_tasks
    data = root / "data/task/sentiment"
    assert fetched["outputs"]["finetune.task.data_dir"] == "data/task/sentiment"
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["files"]["train.tsv"]["records"] == 33 and manifest["files"]["dev.tsv"]["records"] == 9
    assert (data / "dev.tsv").read_bytes() == (FIXTURE / "dev.tsv").read_bytes()
    assert {p.name: p.read_bytes() for p in (root / "data/task/ynat").iterdir()} == ynat_files  # untouched


def test_tsv_task_is_finetuned_into_its_own_model_and_run(two_tasks) -> None:
    import mlflow

    from elmo.params import load_params
    from elmo.task.classifier import Classifier

    root, pfile, _, report, _ = two_tasks
    assert report["outputs"]["finetune.out_dir"] == "models/sentiment" and not (root / "models/ynat").exists()
    metrics = json.loads((root / "metrics/finetune/sentiment.json").read_text())
    assert metrics["labels"] == ["0", "1", "2"] and metrics["n_train"] == 33 and metrics["n_dev"] == 9
    clf = Classifier.load(root / "models/sentiment")
    out = clf.predict(["배송이 빠르고 아주 만족한다", "정말 최악이다"])
    assert [set(r["probs"]) for r in out] == [{"0", "1", "2"}] * 2
    p = load_params(pfile)
    assert p.register.models["sentiment"].name == "elmo-sentiment"  # keyed by the task
    assert p.register.models["sentiment"].model_dir == "models/sentiment"
    mlflow.set_tracking_uri("sqlite:///" + str(root / "mlflow.db"))
    runs = mlflow.search_runs(experiment_names=["elmo-ko"], filter_string="tags.`elmo.stage` = 'finetune'")
    assert list(runs["tags.mlflow.runName"]) == ["finetune-sentiment"]
    comp = json.loads((root / "metrics/finetune/sentiment_comparison.json").read_text())
    assert [r["name"] for r in comp["rows"]] == ["tfidf_lr", "elmo", "main"]
    assert (root / "models/bilm_sentiment/config.json").is_file()  # the biLM adapted on this task's texts


def test_predict_defaults_to_the_tasks_model(two_tasks, monkeypatch) -> None:
    from typer.testing import CliRunner

    from elmo.cli import app

    root, pfile, _, _, _ = two_tasks
    monkeypatch.chdir(root)
    res = CliRunner().invoke(app, ["predict", "정말 최악이다", "--json", "--params", str(pfile)])
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.output)[0]["probs"]) == {"0", "1", "2"}


# --- an unclosed quote (issue 22): named by the line where it opened, whatever invalid_records says --
def _quoted_rows(sep: str, bad_line: int = 51, n: int = 700) -> str:
    """A header and ``n`` records; every 10th title is quoted (holding the separator); the record on
    file line ``bad_line`` opens a quote it never closes, so a later quote closes it."""
    lines = ["title" + sep + "label"]
    for i in range(2, n + 2):
        if i == bad_line:
            lines.append('"열린 따옴표 제목' + sep + "정치")
        elif i % 10 == 0:
            lines.append(f'"따옴표{sep} 있는 제목 {i}"' + sep + "경제")
        else:
            lines.append(f"제목 {i}" + sep + "사회")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("fmt, sep", [("csv", ","), ("tsv", "\t")])
@pytest.mark.parametrize("policy", ["error", "skip"])
def test_unclosed_quote_names_the_line_it_opened_on_whatever_invalid_records_says(tmp_path, fmt, sep,
                                                                                    policy) -> None:
    f = tmp_path / f"dev.{fmt}"
    f.write_text(_quoted_rows(sep), encoding="utf-8")
    with pytest.raises(StageError, match=rf"dev\.{fmt}: line 51: not valid {fmt.upper()}: unclosed quote") as err:
        read_records(f, text_field="title", label_field="label", invalid_records=policy)
    assert "\n" not in str(err.value)
    f.write_text(_quoted_rows(sep, bad_line=10_000), encoding="utf-8")  # the same file without it reads fine
    records, _ = read_records(f, text_field="title", label_field="label", invalid_records=policy)
    assert len(records) == 700 and records[8].text == " ".join(f"따옴표{sep} 있는 제목 10".split())


def test_fetch_task_refuses_an_unclosed_quote_even_with_invalid_records_skip(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src/train.csv").write_text(_quoted_rows(",", bad_line=10_000), encoding="utf-8")
    (tmp_path / "src/dev.csv").write_text(_quoted_rows(","), encoding="utf-8")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"finetune": {"task": {
        "name": "quotes", "source": "src", "train_file": "train.csv", "dev_file": "dev.csv", "id_field": None,
        "invalid_records": "skip"}}}))
    res = CliRunner().invoke(app, ["fetch_task"])
    assert res.exit_code == 2, res.output
    errors = [line[line.index("error: "):] for line in res.output.splitlines() if "error: " in line]
    assert len(errors) == 1 and "dev.csv: line 51: not valid CSV: unclosed quote" in errors[0], res.output
    assert not (tmp_path / "data/task/quotes/dev.csv").exists()
