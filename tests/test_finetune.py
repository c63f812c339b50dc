"""The fetch_task and finetune stages end to end on a tiny fixture (tiny random biLM, 3 classes),
and fetch_task against the offline mirror's real YNAT files."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
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
    # as a user's file may have them: the text pipeline's normaliser undoes both (counted in the metrics)
    written = {"인공지능 반도체 개발 성공": unicodedata.normalize("NFD", "인공지능 반도체 개발 성공"),
               "야구 대표팀 결승 진출": "야구&#32;대표팀\u200b 결승  진출"}
    for lab, texts in HEADLINES.items():
        for i, t in enumerate(texts):
            rec = {"guid": f"ynat-v1_train_{len(train):05d}", "title": written.get(t, t), "label": lab, "url": "u"}
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
    assert json.loads((root / "models/ynat/text_pipeline.json").read_text())["tokenizer"]["tagger"] == "mecab"


def test_text_pipeline_counts_in_the_finetune_metrics(finetuned) -> None:
    root = finetuned[0]
    metrics = json.loads((root / "metrics/finetune/ynat.json").read_text())
    assert metrics["data"]["train"]["normalisation"] == {  # what the biLM's normaliser changed in train
        "html_entities": 1, "nfc_changed": 1, "zero_width_removed": 1, "control_chars": 0,
        "moderator_notices_removed": 0, "masked_spans": 0}
    assert sum(metrics["data"]["dev"]["normalisation"].values()) == 0


def test_text_pipeline_same_label_for_forms_of_a_headline(finetuned) -> None:
    """NFD jamo, extra spaces, a zero-width space and HTML entities: the same tokens, label and probabilities."""
    from elmo.task.classifier import Classifier

    clf = Classifier.load(finetuned[0] / "models/ynat")
    base = '삼성전자 "새" 스마트폰 & 공개'
    forms = [unicodedata.normalize("NFD", base), '  삼성전자   "새"\t스마트폰 &  공개 ',
             '삼성\u200b전자 "새" 스마트폰 & 공개', "삼성전자 &quot;새&quot; 스마트폰 &amp; 공개"]
    assert all(f != base for f in forms)
    assert clf.tokens(forms) == clf.tokens([base]) * len(forms)
    probs = clf.predict_proba([base, *forms])
    for row in probs[1:]:
        np.testing.assert_array_equal(row, probs[0])
    assert len({r["label"] for r in clf.predict([base, *forms])}) == 1


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
    assert preds[0] == "text,actual,predicted" and len(preds) == 7
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
    from elmo.task.inputs import load_task_data
    from elmo.text.pipeline import TextPipeline

    pfile = workspace(tmp_path, repo_root, tmp_path / "no-bilm")
    params = yaml.safe_load(pfile.read_text())
    params["finetune"]["tasks"]["ynat"]["source"] = mirror_url + "klue/ynat-v1.1/"
    pfile.write_text(yaml.safe_dump(params, allow_unicode=True))
    report = run_stage("fetch_task", str(pfile), tmp_path)
    assert report["files"]["ynat-v1.1_train.json"]["records"] == 36_547
    assert report["files"]["ynat-v1.1_dev.json"]["records"] == 9_107
    p = load_params(pfile)
    data = load_task_data(p.finetune.task, tmp_path / p.finetune.task.data_dir,
                          TextPipeline.from_params(p.clean, p.tokenize))
    assert data["labels"] == ["IT과학", "경제", "사회", "생활문화", "세계", "스포츠", "정치"]
    assert not data["reports"]["train"].skipped and not data["reports"]["dev"].skipped
    # the text pipeline on YNAT: a few NFD titles, and three train titles masked as the petitions were
    assert data["reports"]["train"].normalisation == {"html_entities": 0, "nfc_changed": 76, "zero_width_removed": 0,
                                                      "control_chars": 0, "moderator_notices_removed": 0,
                                                      "masked_spans": 3}
    assert data["reports"]["dev"].normalisation["nfc_changed"] == 9


def test_served_equals_measured_through_the_classifier_and_the_pyfunc(finetuned, tmp_path) -> None:
    """The default path (finetune.cache_dtype float16): the saved directory and the MLflow pyfunc give
    exactly the dev predictions finetune measured, hence its macro-F1 (register runs the same check)."""
    import mlflow

    from elmo.registry.pyfunc import log_dir_model
    from elmo.registry.served import check_served, read_predictions
    from elmo.task.classifier import Classifier
    from elmo.task.metrics import classification_metrics

    root = finetuned[0]
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    assert "cache_dtype" not in params["finetune"] or params["finetune"]["cache_dtype"] == "float16"
    metrics = json.loads((root / "metrics/finetune/ynat.json").read_text())
    predictions = root / "plots/finetune/ynat/dev_predictions.csv"
    rows = read_predictions(predictions)
    dev = json.loads((root / "data/task/ynat/ynat-v1.1_dev.json").read_text())
    assert [r["text"] for r in rows] == [r["title"] for r in dev] and [r["actual"] for r in rows] == [
        r["label"] for r in dev]
    assert json.loads((root / "models/ynat/config.json").read_text())["layer_dtype"] == "float16"

    clf = Classifier.load(root / "models/ynat")
    served = [p["label"] for p in clf.predict([r["text"] for r in rows])]
    assert served == [r["predicted"] for r in rows]
    m = classification_metrics([r["actual"] for r in rows], served, metrics["labels"])
    assert m["macro_f1"] == metrics["macro_f1"] and m["accuracy"] == metrics["accuracy"]

    mlflow.set_tracking_uri("sqlite:///" + str(tmp_path / "mlflow.db"))
    exp = mlflow.create_experiment("served", artifact_location=(tmp_path / "art").as_uri())
    with mlflow.start_run(experiment_id=exp):
        info = log_dir_model(name="elmo-ynat", model_dir=root / "models/ynat", loader="elmo.task:Classifier",
                             input_column="text", input_type="string", code_paths=[], pip_requirements=[])
    assert check_served(info.model_uri, predictions, input_column="text")["predictions"] == len(rows)
    other = next(lab for lab in metrics["labels"] if lab != rows[1]["predicted"])
    lines = predictions.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + "," + other  # one measured prediction the model does not make
    (tmp_path / "edited.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(StageError, match=r"edited.csv: row 2: .* \(1 of 6 predictions differ\)"):
        check_served(info.model_uri, tmp_path / "edited.csv", input_column="text")


def test_text_pipeline_old_classifier_directory_loads_with_the_default_normaliser(finetuned, tmp_path,
                                                                                  caplog) -> None:
    """A classifier saved before its text pipeline was (tokenizer.json only) loads with the default
    normaliser and a warning; without either file it is an error naming the file."""
    import shutil

    from elmo.task.classifier import Classifier

    new = finetuned[0] / "models/ynat"
    old = tmp_path / "old"
    shutil.copytree(new, old)
    pipeline = json.loads((old / "text_pipeline.json").read_text())
    (old / "text_pipeline.json").unlink()
    (old / "tokenizer.json").write_text(json.dumps(pipeline["tokenizer"]), encoding="utf-8")
    with caplog.at_level("WARNING", logger="elmo"):
        clf = Classifier.load(old)
    assert f"{old / 'text_pipeline.json'}: no saved text pipeline" in caplog.text
    texts = ["손흥민 시즌 첫 골 기록", "국회 &quot;예산안&quot; 통과"]
    assert clf.predict(texts) == Classifier.load(new).predict(texts)
    (old / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="text_pipeline.json: no such file"):
        Classifier.load(old)


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


def test_model_directories_files_have_one_mode(finetuned) -> None:
    """Every weights file a stage writes (the classifier's, its TF-IDF half's, the biLM's inside it) is
    readable as the umask allows, as every other output: one writer behaviour (safetensors alone: 0600)."""
    import os

    mask = os.umask(0)
    os.umask(mask)
    root = finetuned[0]
    files = sorted((root / "models/ynat").rglob("*.safetensors"))
    assert {f.relative_to(root / "models/ynat").as_posix() for f in files} >= {"weights.safetensors",
                                                                                "bilm/weights.safetensors"}
    modes = {f.relative_to(root).as_posix(): oct(f.stat().st_mode & 0o777) for f in files}
    assert modes == {name: oct(0o666 & ~mask) for name in modes}
