"""Registry and rollback building blocks, fast (no MLflow store, no DVC pipeline run).

The end-to-end behaviour (three pipeline runs, champion moves, rollback, fresh clone) is in
tests/test_rollback.py; serving in tests/test_serve.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from elmo.errors import StageError
from elmo.params import ParamsError, load_params, parse_params
from elmo.registry import champion, store
from elmo.registry.lockfile import parse_lock
from test_registry_toy import sh

LOCK = """\
schema: '2.0'
stages:
  prepare:
    cmd: python prepare.py
    deps:
    - path: prepare.py
      hash: md5
      md5: 11111111111111111111111111111111
      size: 10
    params:
      toy.yaml:
        data:
          rows: 3
    outs:
    - path: data/prepared.txt
      hash: md5
      md5: 22222222222222222222222222222222
      size: 17
  train:
    cmd: python train.py
    deps:
    - path: data/prepared.txt
      hash: md5
      md5: 22222222222222222222222222222222
      size: 17
    - path: train.py
      hash: md5
      md5: 33333333333333333333333333333333
      size: 400
    params:
      toy.yaml:
        train:
          quality: 0.7
    outs:
    - path: metrics/toy.json
      hash: md5
      md5: 44444444444444444444444444444444
      size: 20
    - path: models/toy
      hash: md5
      md5: 55555555555555555555555555555555.dir
      size: 91
      nfiles: 2
"""


# --- dvc.lock ---------------------------------------------------------------------------------

def test_lock_is_read_per_stage() -> None:
    lock = parse_lock(LOCK)
    train = lock.stage("train")
    assert train.outs == {"metrics/toy.json": "4" * 32, "models/toy": "5" * 32 + ".dir"}
    assert train.deps["data/prepared.txt"] == "2" * 32
    assert train.params == {"toy.yaml": {"train": {"quality": 0.7}}}
    assert lock.params_files() == {"toy.yaml"}
    assert lock.producer_of("data/prepared.txt") == "prepare"
    assert lock.producer_of("models/toy/model.json") == "train" and lock.producer_of("train.py") is None
    assert train.params_md5() == parse_lock(LOCK).stage("train").params_md5()
    assert train.params_md5() != lock.stage("prepare").params_md5()


def test_lock_errors_name_the_file_and_the_stage(tmp_path: Path) -> None:
    from elmo.registry.lockfile import read_lock

    with pytest.raises(StageError, match=r"dvc.lock: no stage 'finetune' \(stages recorded: prepare, train\)"):
        parse_lock(LOCK).stage("finetune")
    with pytest.raises(StageError, match="not valid YAML"):
        parse_lock("stages: [", "x/dvc.lock")
    with pytest.raises(StageError, match="x/dvc.lock: not a dvc.lock file"):
        parse_lock("a: 1\n", "x/dvc.lock")
    with pytest.raises(StageError, match=r"stages.train.outs: expected a list"):
        parse_lock("schema: '2.0'\nstages:\n  train:\n    outs: 3\n")
    with pytest.raises(StageError, match=f"{tmp_path}/dvc.lock: not found; run the pipeline with `dvc repro`"):
        read_lock(tmp_path)


# --- champion rule ----------------------------------------------------------------------------

@pytest.mark.parametrize(("new", "champ", "higher", "promote", "words"), [
    (0.8, None, True, True, "no champion yet"),
    (0.8, 0.7, True, True, "beats champion v1"),
    (0.6, 0.7, True, False, "does not beat champion v1"),
    (0.7, 0.7, True, False, "does not beat"),  # a tie keeps the champion
    (30.0, 45.0, False, True, "lower is better"),  # perplexity: lower wins
    (50.0, 45.0, False, False, "champion stays v1"),
    (math.nan, 0.7, True, False, "not a number"),
])
def test_champion_moves_only_to_a_strictly_better_version(new, champ, higher, promote, words) -> None:
    d = champion.decide("m", new, 2, higher_is_better=higher, champion_version=None if champ is None else 1,
                        champion_value=champ)
    assert d.promote is promote and words in d.reason


def test_a_champion_without_a_recorded_metric_is_not_displaced() -> None:
    d = champion.decide("macro_f1", 0.9, 3, higher_is_better=True, champion_version=1, champion_value=None)
    assert not d.promote and "no recorded macro_f1" in d.reason


# --- pyfunc input/output ----------------------------------------------------------------------

def test_pyfunc_accepts_the_usual_input_shapes() -> None:
    from elmo.registry.pyfunc import to_items

    texts = ["가 나", "다"]
    assert to_items(pd.DataFrame({"text": texts}), "text", "string") == texts
    assert to_items(pd.DataFrame({0: texts}), "text", "string") == texts  # {"inputs": [...]}
    assert to_items(texts, "text", "string") == texts
    assert to_items(np.array(texts, dtype=object), "text", "string") == texts
    assert to_items(np.array([[t] for t in texts], dtype=object), "text", "string") == texts
    assert to_items("가 나", "text", "string") == ["가 나"]
    tokens = [["가", "나"], ["다"]]
    assert to_items(pd.DataFrame({"tokens": tokens}), "tokens", "tokens") == tokens
    assert to_items(pd.DataFrame({"tokens": [np.array(t) for t in tokens]}), "tokens", "tokens") == tokens


def test_pyfunc_rejects_rows_that_are_not_texts() -> None:
    from elmo.registry.pyfunc import to_items

    with pytest.raises(ValueError, match="item 1: expected a text"):
        to_items(["ok", 3], "text", "string")
    with pytest.raises(ValueError, match="shape"):
        to_items(np.array([["a", "b"]], dtype=object), "text", "string")
    with pytest.raises(ValueError, match="expected one named 'text'"):
        to_items(pd.DataFrame({"a": ["x"], "b": ["y"]}), "text", "string")
    with pytest.raises(ValueError, match="item 0: expected a list of token strings"):
        to_items(pd.DataFrame({"tokens": ["not a list"]}), "tokens", "tokens")


def test_requirements_are_pinned_to_what_is_installed() -> None:
    import importlib.metadata

    from elmo.registry.pyfunc import pinned

    assert pinned(["numpy", "torch>=2"]) == [f"numpy=={importlib.metadata.version('numpy')}", "torch>=2"]
    with pytest.raises(StageError, match="register.pip_requirements: 'no-such-package-xyz' is not installed"):
        pinned(["no-such-package-xyz"])


def test_smoke_test_rejects_probabilities_that_do_not_add_up(monkeypatch) -> None:
    import mlflow.pyfunc

    from elmo.registry import pyfunc

    class Fake:
        def predict(self, data):
            return [{"label": "a", "probs": {"a": 0.5, "b": 0.2}}]

    monkeypatch.setattr(mlflow.pyfunc, "load_model", lambda uri: Fake())
    with pytest.raises(StageError, match="sum to 0.7000 instead of 1"):
        pyfunc.smoke_test("models:/m-1", ["x"], input_column="text", input_type="string")
    with pytest.raises(StageError, match="1 answers for 2 example inputs"):
        pyfunc.smoke_test("models:/m-1", ["x", "y"], input_column="text", input_type="string")


# --- metrics and version tags -----------------------------------------------------------------

def test_metric_is_read_by_dotted_key_and_must_be_a_finite_number(tmp_path: Path) -> None:
    from elmo.params.register import RegisteredModelParams
    from elmo.registry.register import read_metrics

    spec = RegisteredModelParams(name="m", model_dir="models/m", dvc_stage="s", metrics_file="metrics/m.json",
                                 metric="dev.macro_f1", higher_is_better=True, loader="a:B", example=["x"])
    path = tmp_path / "metrics" / "m.json"
    with pytest.raises(StageError, match="metrics file not found"):
        read_metrics(tmp_path, spec)
    path.parent.mkdir()
    path.write_text(json.dumps({"dev": {"macro_f1": 0.5, "per_class": {"스포츠": 0.4}, "ok": True}, "labels": ["a"]}))
    flat, value = read_metrics(tmp_path, spec)
    assert value == 0.5 and flat == {"dev.macro_f1": 0.5, "dev.per_class.스포츠": 0.4}
    path.write_text(json.dumps({"dev": {"accuracy": 0.5}}))
    with pytest.raises(StageError, match=r"m.json: dev.macro_f1: no such metric"):
        read_metrics(tmp_path, spec)
    path.write_text('{"dev": {"macro_f1": NaN}}')
    with pytest.raises(StageError, match="expected a finite number"):
        read_metrics(tmp_path, spec)
    path.write_text("{")
    with pytest.raises(StageError, match="not valid JSON"):
        read_metrics(tmp_path, spec)


def test_version_tag_helpers_tolerate_hand_edited_tags() -> None:
    v = store.Version(name="m", version=1, tags={"dvc.outs": "{not json", "metric.f1": "0.5", "metric.x": "abc",
                                                 "dvc.model_md5": "aa.dir"},
                      aliases=(), created_ms=0, run_id=None, source="")
    assert v.json_tag("dvc.outs") == {} and v.json_tag("missing") == {}
    assert v.metric("f1") == 0.5 and v.metric("x") is None and v.metric("nope") is None
    assert v.model_md5 == "aa.dir"


def test_a_version_matches_only_the_commit_that_recorded_its_outs_and_deps() -> None:
    from elmo.registry.history import lock_matches

    lock = parse_lock(LOCK)
    train = lock.stage("train")
    tags = {"dvc.stage": "train", "dvc.outs": json.dumps(train.outs), "dvc.deps": json.dumps(train.deps)}
    v = store.Version("m", 1, tags, (), 0, None, "")
    assert lock_matches(lock, v)
    other = dict(train.deps, **{"data/prepared.txt": "9" * 32})
    assert not lock_matches(lock, store.Version("m", 2, dict(tags, **{"dvc.deps": json.dumps(other)}), (), 0, None, ""))
    assert not lock_matches(lock, store.Version("m", 3, dict(tags, **{"dvc.stage": "prepare"}), (), 0, None, ""))
    assert not lock_matches(None, v)


# --- rollback's view of git -------------------------------------------------------------------

@pytest.fixture()
def tiny_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "metrics").mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / "dvc.lock").write_text(LOCK)
    (root / "toy.yaml").write_text("train: {quality: 0.7}\n")
    (root / "metrics" / "toy.json").write_text("{}\n")
    (root / "train.py").write_text("print()\n")
    (root / "raw.dvc").write_text("outs: []\n")
    sh(root, "git", "init", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-q", "-m", "one")
    return root


def test_rollback_restores_pipeline_files_not_code(tiny_repo: Path) -> None:
    from elmo import gitrepo
    from elmo.registry.restore import pipeline_files

    files = pipeline_files(tiny_repo, gitrepo.head(tiny_repo), parse_lock(LOCK))
    assert files == {"dvc.yaml", "dvc.lock", "toy.yaml", "metrics/toy.json", "raw.dvc"}


def test_uncommitted_changes_are_found_except_what_the_last_rollback_wrote(tiny_repo: Path) -> None:
    import hashlib

    from elmo import gitrepo
    from elmo.registry.safety import uncommitted

    head = gitrepo.head(tiny_repo)
    files = {"dvc.lock", "toy.yaml", "metrics/toy.json"}
    assert uncommitted(tiny_repo, head, files, {}) == []
    (tiny_repo / "toy.yaml").write_text("train: {quality: 0.1}\n")
    (tiny_repo / "metrics" / "toy.json").unlink()
    assert uncommitted(tiny_repo, head, files, {}) == ["metrics/toy.json", "toy.yaml"]
    state = {"written": {"toy.yaml": hashlib.sha256(b"train: {quality: 0.1}\n").hexdigest(),
                         "metrics/toy.json": None}}
    assert uncommitted(tiny_repo, head, files, state) == []  # exactly as rollback left them
    (tiny_repo / "toy.yaml").write_text("train: {quality: 0.2}\n")  # edited after the rollback
    assert uncommitted(tiny_repo, head, files, state) == ["toy.yaml"]
    assert gitrepo.dirty_files(tiny_repo, exclude={"metrics"}) == ["toy.yaml"]


# --- params, dvc.yaml, DVC remote, Makefile ---------------------------------------------------

def test_register_params_follow_the_stages_they_read(repo_root: Path) -> None:
    p = load_params(repo_root / "params.yaml")
    ynat, bilm = p.register.models["ynat"], p.register.models["bilm"]
    assert (ynat.model_dir, ynat.metrics_file) == (p.finetune.out_dir, p.finetune.metrics)
    assert (bilm.model_dir, bilm.metrics_file) == (p.pretrain.out_dir, p.pretrain.metrics)
    assert p.finetune.bilm_dir == bilm.model_dir
    assert p.register.primary == "ynat" and ynat.name == "elmo-ynat" and bilm.name == "elmo-bilm"
    assert ynat.loader == "elmo.task:Classifier" and ynat.higher_is_better and not bilm.higher_is_better
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    # a task's classifier comes from finetune@<name> (dvc.yaml: foreach over finetune.tasks)
    assert ynat.dvc_stage == "finetune@ynat" and "foreach" in stages["finetune"] and bilm.dvc_stage in stages
    deps = stages["register"]["deps"]
    assert "${register.models.bilm.metrics_file}" in deps and "${register.models.bilm.model_dir}" in deps
    # every task's metrics (metrics/finetune/<name>.json) lie in this dep: DVC links register to each finetune@
    assert "metrics/finetune" in deps and ynat.metrics_file.startswith("metrics/finetune/")
    # the classifier's directory follows the task's name (models/<name>), in dvc.yaml as in params
    assert "models/${key}" in stages["finetune"]["do"]["outs"] and ynat.model_dir == f"models/{p.finetune.task.name}"
    assert "outs" not in stages["register"]  # its report is a metric (the pipeline summary shows it)
    assert stages["register"]["metrics"] == [{"${register.report}": {"cache": False}}]


@pytest.mark.parametrize(("change", "message"), [
    ({"primary": "nope"}, "primary: 'nope' is not a key of models"),
    ({"alias": "latest"}, "register.alias"),
    ({"models": {}}, "declare at least one model"),
    ({"models": {"a": {"loader": "no-colon"}}}, "register.models.a.loader"),
    ({"models": {"a": {"example": [["tokens"]]}}}, "example[0] must be a string"),
    ({"models": {"a": {"unknown": 1}}}, "register.models.a.unknown: unknown key"),
])
def test_bad_register_params_are_named(change, message) -> None:
    model = {"name": "m", "model_dir": "models/m", "dvc_stage": "s", "metrics_file": "m.json", "metric": "f1",
             "higher_is_better": True, "loader": "a:B", "example": ["x"]}
    register = {"primary": "a", "models": {"a": dict(model)}}
    for k, v in change.items():
        if k == "models" and v:
            register["models"]["a"].update(v["a"])
        else:
            register[k] = v
    with pytest.raises(ParamsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_params({"register": register})


def test_a_local_dvc_remote_is_the_default_and_the_pipeline_pushes(repo_root: Path) -> None:
    from configobj import ConfigObj

    cfg = ConfigObj(str(repo_root / ".dvc" / "config"))
    name = cfg["core"]["remote"]
    url = cfg[f'remote "{name}"']["url"]
    assert "://" not in url  # a local directory (relative to .dvc/)
    # `make pipeline` runs `elmo repro` (with and without MIRROR), whose record ends with `dvc push`
    # when flows.record.push is on, as the project's params.yaml has it (tests/test_record.py runs it)
    recipe = (repo_root / "Makefile").read_text().split("\npipeline:", 1)[1].split("\n# ruff", 1)[0]
    assert recipe.count("elmo repro --run") == 2 and "dvc repro\n" not in recipe
    record = load_params(repo_root / "params.yaml").flows.record
    assert record.enabled and record.push


def test_cli_rollback_needs_a_registry_and_one_action(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from elmo.cli import app

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"mlflow": {"tracking_uri": "sqlite:///registry/mlflow.db"}}))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["rollback", "--list"])
    assert result.exit_code == 2 and "registry/mlflow.db: no MLflow registry here yet" in result.stderr
    assert not (tmp_path / "registry" / "mlflow.db").exists()  # listing never creates a store
    result = CliRunner().invoke(app, ["rollback", "--list", "--to", "1"])
    assert result.exit_code == 2 and "exactly one of --list or --to" in result.stderr


def test_bilm_embedder_serves_elmo_layers_for_sentences_and_token_lists(tmp_path: Path) -> None:
    from elmo.registry.embedder import BiLMEmbedder
    from elmo.text import Tokenizer
    from tiny_elmo import make_bilm_dir

    tokenizer = Tokenizer("mecab")
    embedder = BiLMEmbedder.load(make_bilm_dir(tmp_path, tokenizer, projection_dim=8))
    (out,) = embedder.predict(["국회 예산안 통과"])
    assert out["tokens"] == tokenizer.tokenize("국회 예산안 통과")
    layers = np.array(out["layers"])
    assert layers.shape == (3, len(out["tokens"]), 16)  # (L+1, n, 2P)
    assert np.allclose(layers[0, :, :8], layers[0, :, 8:])  # layer 0 is the token vector, duplicated
    (again,) = embedder.predict([out["tokens"]])  # the same sentence as tokens: the same vectors
    assert np.allclose(np.array(again["layers"]), layers, atol=1e-6)
