"""The fetch_task and finetune stages end to end on a tiny fixture (tiny random biLM, 3 classes),
and fetch_task against the offline mirror's real YNAT files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from elmo.cli import app
from elmo.errors import StageError
from elmo.task import Classifier
from tiny_elmo import HEADLINES, make_bilm_dir


@pytest.fixture(scope="module")
def tokenizer():
    from elmo.text import Tokenizer

    return Tokenizer("mecab")


def klue_files(src: Path) -> None:
    """train/dev in the official KLUE layout; train has one empty title (a counted skip)."""
    src.mkdir(parents=True, exist_ok=True)
    train, dev = [], []
    for lab, texts in HEADLINES.items():
        for i, t in enumerate(texts):
            rec = {"guid": f"ynat-v1_train_{len(train):05d}", "title": t, "label": lab, "url": "u"}
            (dev if i % 3 == 0 else train).append(rec)
    train.append({"guid": "ynat-v1_train_empty", "title": " ", "label": "정치", "url": "u"})
    for name, recs in (("ynat-v1.1_train.json", train), ("ynat-v1.1_dev.json", dev)):
        (src / name).write_text(json.dumps(recs, ensure_ascii=False, indent=4), encoding="utf-8")


def workspace(root: Path, repo_root: Path, bilm: Path, **finetune) -> Path:
    params = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    f = params["finetune"]
    f["tasks"]["ynat"]["source"] = str(root / "src")
    f["bilm_dir"] = str(bilm)
    f["model"].update(word_dim=8, hidden=8, word_min_count=1)
    f["train"].update(batch_size=4, lr=0.01, max_epochs=3, patience=3, threads=1)
    f["tfidf"].update(min_df=1)
    f["adapt"].update(max_steps=4, batch_tokens=128, heldout_sentences=2)
    f["unfreeze"].update(max_epochs=2)
    f["heldout_fraction"] = 0.25
    f["cache_dtype"] = "float32"
    for key, value in finetune.items():
        f[key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    return root / "params.yaml"


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, repo_root, tokenizer):
    from elmo.cli import run_stage

    root = tmp_path_factory.mktemp("ws")
    bilm = make_bilm_dir(tmp_path_factory.mktemp("bilm"), tokenizer)
    klue_files(root / "src")
    pfile = workspace(root, repo_root, bilm)
    fetched = run_stage("fetch_task", str(pfile), root)
    report = run_stage("finetune", str(pfile), root)
    return root, pfile, fetched, report


def test_fetch_task_writes_files_and_manifest(finetuned) -> None:
    root, _, fetched, _ = finetuned
    data = root / "data/task/ynat"
    manifest = json.loads((data / "manifest.json").read_text())
    assert set(manifest["files"]) == {"ynat-v1.1_train.json", "ynat-v1.1_dev.json"}
    entry = manifest["files"]["ynat-v1.1_dev.json"]
    assert entry["records"] == 6 and len(entry["sha256"]) == 64
    assert (data / "ynat-v1.1_dev.json").read_bytes() == (root / "src/ynat-v1.1_dev.json").read_bytes()
    assert fetched["files"]["ynat-v1.1_train.json"]["records"] == 12  # the empty title is not a record


def test_finetune_outputs_and_metrics_equal_sklearn(finetuned) -> None:
    from sklearn.metrics import accuracy_score, f1_score

    from elmo.task.classifier import Classifier

    root, _, _, report = finetuned
    metrics = json.loads((root / "metrics/finetune/ynat.json").read_text())
    assert metrics["n_train"] == 12 and metrics["n_dev"] == 6
    assert metrics["data"]["train"]["skipped"] == {"empty_text": 1}
    assert metrics["labels"] == sorted(HEADLINES) and 1 <= metrics["best_epoch"] <= 3
    dev = json.loads((root / "data/task/ynat/ynat-v1.1_dev.json").read_text())
    clf = Classifier.load(root / "models/ynat")
    pred = [r["label"] for r in clf.predict([r["title"] for r in dev])]
    truth = [r["label"] for r in dev]
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, pred, average="macro"), abs=1e-9)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, pred), abs=1e-9)
    assert report["macro_f1"] == metrics["macro_f1"]
    assert (root / "models/ynat/bilm/weights.safetensors").is_file()
    assert json.loads((root / "models/ynat/tokenizer.json").read_text())["tagger"] == "mecab"


def test_comparison_table_plots_and_mlflow(finetuned) -> None:
    import mlflow

    root, _, _, _ = finetuned
    comp = json.loads((root / "metrics/finetune/ynat_comparison.json").read_text())
    names = [r["name"] for r in comp["rows"]]
    assert names == ["tfidf_lr", "no_elmo", "random_bilm", "elmo", "adapted", "unfrozen", "main"]
    main = [r for r in comp["rows"] if r.get("is_main")]
    assert [r["name"] for r in main] == ["main"] and main[0]["macro_f1"] == comp["main_macro_f1"]
    # the ELMo half of the main model is the `adapted` row (trained once: the same fit)
    adapted = next(r for r in comp["rows"] if r["name"] == "adapted")
    assert (adapted["best_epoch"], adapted["epochs"]) == (main[0]["best_epoch"], main[0]["epochs"])
    assert adapted["is_main"] is False
    assert adapted["seconds"] == pytest.approx(main[0]["seconds"] - comp["rows"][0]["seconds"])
    table = (root / "metrics/finetune/ynat_comparison.md").read_text()
    assert "| tfidf_lr |" in table and "| main |" in table and "| random_bilm |" in table
    plots = root / "plots/finetune/ynat"
    hist = (plots / "history.csv").read_text().splitlines()
    assert hist[0].startswith("epoch,") and len(hist) == 4
    assert (plots / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (plots / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the curves, offline
    curves = sorted(p.name for p in (plots / "compare").iterdir())
    assert curves == ["adapted.csv", "elmo.csv", "main.csv", "no_elmo.csv", "random_bilm.csv", "unfrozen.csv"]
    preds = (plots / "dev_predictions.csv").read_text().splitlines()
    assert preds[0] == "actual,predicted" and len(preds) == 7
    mlflow.set_tracking_uri("sqlite:///" + str(root / "mlflow.db"))
    runs = mlflow.search_runs(experiment_names=["elmo-ko"], filter_string="tags.`elmo.stage` = 'finetune'")
    assert len(runs) == 1
    run = mlflow.get_run(runs.iloc[0]["run_id"])
    assert run.data.metrics["macro_f1"] == pytest.approx(comp["main_macro_f1"])
    assert "compare.tfidf_lr.macro_f1" in run.data.metrics
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "heldout_macro_f1")
    assert sorted(m.step for m in history) == [1, 2, 3]


def test_second_run_reuses_the_cached_layers(finetuned, capsys) -> None:
    from elmo.cli import run_stage

    root, pfile, _, _ = finetuned
    caches = sorted(p.name for p in (root / "data/cache/elmo").iterdir() if p.name != "random_bilm")
    assert (root / "data/cache/elmo/random_bilm").is_dir()  # the untrained control biLM, saved once
    assert len(caches) == 9  # fit, held-out slice and dev of the pretrained, random and adapted biLMs
    params = yaml.safe_load(pfile.read_text())
    params["finetune"]["compare"] = []  # only the main model; a config none of the variants matches
    params["finetune"]["model"]["elmo_layer_norm"] = True
    params["finetune"]["train"]["max_epochs"] = 1
    again = pfile.with_name("again.yaml")
    again.write_text(yaml.safe_dump(params, allow_unicode=True))
    capsys.readouterr()
    run_stage("finetune", str(again), root)
    captured = capsys.readouterr()
    assert "read from" in captured.err and "read from" not in captured.out  # messages on stderr only
    assert sorted(p.name for p in (root / "data/cache/elmo").iterdir() if p.name != "random_bilm") == caches
    comp = json.loads((root / "metrics/finetune/ynat_comparison.json").read_text())
    assert [(r["name"], r["is_main"]) for r in comp["rows"]] == [("main", True)]


def test_elmo_predict_command(finetuned) -> None:
    from typer.testing import CliRunner

    from elmo.cli import app

    root, _, _, _ = finetuned
    res = CliRunner().invoke(app, ["predict", "국회 예산안 통과", "손흥민 골", "--model", str(root / "models/ynat"),
                                   "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert len(out) == 2 and out[0]["label"] in HEADLINES
    res = CliRunner().invoke(app, ["predict", "국회", "--model", str(root / "nope")])
    assert res.exit_code == 2 and "no such file" in res.output


def test_unseen_dev_label_and_malformed_record_stop_finetune(tmp_path, repo_root, tokenizer, finetuned) -> None:
    from elmo.cli import run_stage

    root, _, _, _ = finetuned
    bilm = root / "models/ynat/bilm"
    klue_files(tmp_path / "src")
    dev = json.loads((tmp_path / "src/ynat-v1.1_dev.json").read_text())
    dev.append({"guid": "x", "title": "유엔 총회 개막", "label": "세계"})
    (tmp_path / "src/ynat-v1.1_dev.json").write_text(json.dumps(dev, ensure_ascii=False, indent=4))
    pfile = workspace(tmp_path, repo_root, bilm, compare=["tfidf_lr"])
    run_stage("fetch_task", str(pfile), tmp_path)
    with pytest.raises(StageError, match=r"ynat-v1.1_dev.json: line \d+: field label: '세계' does not occur in train"):
        run_stage("finetune", str(pfile), tmp_path)
    train = json.loads((tmp_path / "src/ynat-v1.1_train.json").read_text())
    train[0]["title"] = None
    (tmp_path / "data/task/ynat/ynat-v1.1_train.json").write_text(json.dumps(train, ensure_ascii=False, indent=4))
    with pytest.raises(StageError, match=r"ynat-v1.1_train.json: line 2: field 'title' must be a string"):
        run_stage("finetune", str(pfile), tmp_path)


@pytest.mark.network
def test_fetch_task_over_http_and_rejects_a_bad_file(tmp_path, repo_root) -> None:
    from elmo.cli import run_stage
    from elmo.httpserve import serve_directory

    klue_files(tmp_path / "srv")
    pfile = workspace(tmp_path, repo_root, tmp_path / "no-bilm")
    params = yaml.safe_load(pfile.read_text())
    params["finetune"]["tasks"]["ynat"].update(retries=1, backoff_base_s=0.01, backoff_max_s=0.01)
    with serve_directory(tmp_path / "srv") as url:
        params["finetune"]["tasks"]["ynat"]["source"] = url
        pfile.write_text(yaml.safe_dump(params, allow_unicode=True))
        first = run_stage("fetch_task", str(pfile), tmp_path)
        again = run_stage("fetch_task", str(pfile), tmp_path)
        assert {f["status"] for f in first["files"].values()} == {"fetched"}
        assert {f["status"] for f in again["files"].values()} == {"unchanged"}
        (tmp_path / "srv/ynat-v1.1_dev.json").write_text("[{\"title\": \"a\",", encoding="utf-8")
        with pytest.raises(StageError, match="not valid JSON"):
            run_stage("fetch_task", str(pfile), tmp_path)
        params["finetune"]["tasks"]["ynat"]["dev_file"] = "missing.json"
        pfile.write_text(yaml.safe_dump(params, allow_unicode=True))
        with pytest.raises(StageError, match="not found"):
            run_stage("fetch_task", str(pfile), tmp_path)
    # the good copy fetched earlier is still there, whole
    assert json.loads((tmp_path / "data/task/ynat/ynat-v1.1_dev.json").read_text())


@pytest.mark.slow
@pytest.mark.network
def test_fetch_task_from_the_mirror(mirror_url, tmp_path, repo_root) -> None:
    from elmo.cli import run_stage
    from elmo.params import load_params
    from elmo.stages.finetune import load_task_data

    pfile = workspace(tmp_path, repo_root, tmp_path / "no-bilm")
    params = yaml.safe_load(pfile.read_text())
    params["finetune"]["tasks"]["ynat"]["source"] = mirror_url + "klue/ynat-v1.1/"
    pfile.write_text(yaml.safe_dump(params, allow_unicode=True))
    report = run_stage("fetch_task", str(pfile), tmp_path)
    assert report["files"]["ynat-v1.1_train.json"]["records"] == 36_547
    assert report["files"]["ynat-v1.1_dev.json"]["records"] == 9_107
    p = load_params(pfile)
    data = load_task_data(p.finetune.task, tmp_path / p.finetune.task.data_dir)
    assert data["labels"] == ["IT과학", "경제", "사회", "생활문화", "세계", "스포츠", "정치"]
    assert not data["reports"]["train"].skipped and not data["reports"]["dev"].skipped


def test_elmo_predict_names_a_text_that_is_not_utf8(finetuned) -> None:
    root, _, _, _ = finetuned
    model = str(root / "models/ynat")
    # bytes that are not UTF-8 in an argument, as a shell passes them
    res = subprocess.run([sys.executable, "-c", "from elmo.cli import app; app()", "predict", "국회", b"ab\xff cd",
                          "--model", model], capture_output=True, timeout=120)
    err = res.stderr.decode("utf-8", "replace")
    assert res.returncode == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == ["error: text 1: not valid UTF-8 text: character 2 is the byte 0xff, which is not UTF-8: "
                      "'ab\\udcff cd'"], err
    # a lone surrogate (half of a UTF-16 pair), through the command and the Python API
    res = CliRunner().invoke(app, ["predict", "\ud800 국회", "--model", model])
    assert res.exit_code == 2 and "text 0: not valid UTF-8 text: character 0 is a lone surrogate U+D800" in res.output
    with pytest.raises(ValueError, match="text 0: not valid UTF-8"):
        Classifier.load(model).predict(["\udcff"])
