"""End to end on a tiny DVC + git project: register, champion, rollback, roll forward, fresh clone.

Three pipeline runs (``dvc repro`` → ``elmo register`` as the project's own register stage, then
``git commit`` and ``dvc push``) with different params give three versions:

=====  ====  =======  ==================================================
run    rows  quality  expected
=====  ====  =======  ==================================================
1      3     0.70     v1, champion (first)
2      5     0.60     v2, worse: champion stays v1
3      4     0.80     v3, better: champion moves to v3, previous = v1
=====  ====  =======  ==================================================

The tests below run in file order on that one project (module fixture); each rollback test
states the alias and files it starts from and checks every effect.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from elmo import gitrepo, tracking
from elmo.errors import StageError
from elmo.params import load_params
from elmo.registry import rollback as rb, store
from test_registry_toy import MODEL_NAME, make_project, output_hashes, pipeline_run, sh, write_toy_params

pytestmark = pytest.mark.timeout(900)

RUNS = [(3, 0.70), (5, 0.60), (4, 0.80)]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    base = tmp_path_factory.mktemp("registry")
    root, remote, registry = make_project(base)
    s = SimpleNamespace(base=base, root=root, remote=remote, registry=registry, hashes={}, reports={},
                        champion_after={}, commits={}, head_before={})
    s.params = load_params(root / "params.yaml")
    for n, (rows, quality) in enumerate(RUNS, start=1):
        s.head_before[n] = gitrepo.head(root)
        s.hashes[n] = pipeline_run(root, rows, quality, f"run {n}: rows={rows} quality={quality}")
        s.commits[n] = gitrepo.head(root)
        s.reports[n] = json.loads((root / "metrics" / "register.json").read_text())
        client = tracking.registry_client(s.params.mlflow, root)
        champ = store.by_alias(client, MODEL_NAME, "champion")
        s.champion_after[n] = champ.version if champ else None
    return s


@pytest.fixture()
def client(scenario):
    return tracking.registry_client(scenario.params.mlflow, scenario.root)


def champion(client) -> int | None:
    v = store.by_alias(client, MODEL_NAME, "champion")
    return v.version if v else None


def git_status(root: Path) -> str:
    return sh(root, "git", "status", "--porcelain").stdout


def elmo(monkeypatch, root: Path, *args: str):
    """The `elmo` CLI run in this process from ``root`` (a subprocess would re-import mlflow)."""
    from typer.testing import CliRunner

    from elmo.cli import app

    monkeypatch.chdir(root)
    return CliRunner().invoke(app, list(args))


# --- register ---------------------------------------------------------------------------------

def test_each_pipeline_run_registers_one_version(scenario, client) -> None:
    assert [v.version for v in store.versions(client, MODEL_NAME)] == [1, 2, 3]
    assert [scenario.reports[n]["models"]["toy"]["version"] for n in (1, 2, 3)] == [1, 2, 3]
    assert all(scenario.reports[n]["models"]["toy"]["new"] for n in (1, 2, 3))
    assert len({json.dumps(h, sort_keys=True) for h in scenario.hashes.values()}) == 3  # really different


def test_worse_second_version_does_not_take_champion(scenario) -> None:
    assert scenario.champion_after[1] == 1
    r = scenario.reports[2]["models"]["toy"]
    assert scenario.champion_after[2] == 1
    assert r["promoted"] is False and r["champion"] == 1
    assert "does not beat champion v1" in r["reason"] and "0.6" in r["reason"] and "0.7" in r["reason"]


def test_better_third_version_takes_champion_and_records_the_previous(scenario, client) -> None:
    r = scenario.reports[3]["models"]["toy"]
    assert scenario.champion_after[3] == 3
    assert r["promoted"] is True and r["previous_champion"] == 1
    v3 = store.get(client, MODEL_NAME, 3)
    assert v3.tags["champion.previous"] == "1" and "beats champion v1" in v3.tags["champion.reason"]
    moves = [(m["from"], m["to"]) for m in store.history(client, MODEL_NAME)]
    assert moves[:2] == [(None, 1), (1, 3)]


def test_versions_carry_git_commit_dvc_lock_hashes_and_metrics(scenario, client) -> None:
    from elmo.registry.lockfile import parse_lock

    for n in (1, 2, 3):
        v = store.get(client, MODEL_NAME, n)
        lock = parse_lock(gitrepo.show(scenario.root, scenario.commits[n], "dvc.lock"))
        train = lock.stage("train")
        assert v.tags["git.commit"] == scenario.head_before[n]  # the code that made it
        assert v.tags["git.dirty"] == "false"
        assert v.tags["dvc.stage"] == "train"
        assert v.model_md5 == train.outs["models/toy"] and v.model_md5.endswith(".dir")
        assert v.json_tag("dvc.outs") == train.outs
        assert v.json_tag("dvc.deps") == train.deps
        assert v.json_tag("dvc.data") == {"data/prepared.txt": lock.stage("prepare").outs["data/prepared.txt"]}
        assert json.loads(v.tags["dvc.params"]) == {"toy.yaml": {"train": {"quality": RUNS[n - 1][1]}}}
        assert v.metric("dev.macro_f1") == RUNS[n - 1][1]
        assert v.metric("dev.accuracy") == pytest.approx(RUNS[n - 1][1] + 0.05)
        assert v.source.startswith("models:/")


def test_each_version_links_to_the_run_that_trained_it(scenario, client) -> None:
    """A version's source run is its train stage's MLflow run (not a register run), with only that
    model's metrics; logging the model into it left it FINISHED and did not move its end time."""
    from elmo.io import sha256_dir

    runs = {}
    for n in (1, 2, 3):
        v = store.get(client, MODEL_NAME, n)
        run = client.get_run(v.run_id)
        runs[n] = run.info.run_id
        assert run.data.tags["elmo.stage"] == "train" and run.info.status == "FINISHED"
        quality = RUNS[n - 1][1]
        assert run.data.metrics == {"dev.macro_f1": quality, "dev.accuracy": pytest.approx(quality + 0.05)}
        assert run.info.end_time <= v.created_ms  # trained, then registered
        assert v.tags["ended_by"] == "epochs"  # from the model's metrics file
        logged = client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                             filter_string=f"source_run_id = '{run.info.run_id}'")
        assert [m.name for m in logged] == [MODEL_NAME]
    assert len(set(runs.values())) == 3
    assert client.get_run(runs[3]).data.tags[tracking.MODEL_TAG] == sha256_dir(scenario.root / "models" / "toy")
    stages = {r.data.tags.get("elmo.stage") for r in client.search_runs([client.get_run(runs[1]).info.experiment_id])}
    assert stages == {"train"}  # no register run


def test_register_refuses_a_model_without_its_training_run(scenario, client) -> None:
    from elmo.io import sha256_dir
    from elmo.registry.register import register_models

    root = scenario.root
    write_toy_params(root, rows=7, quality=0.75)
    sh(root, "dvc", "repro", "-q", "train")
    experiment = client.get_experiment_by_name("toy").experiment_id
    trained = tracking.find_training_run(client, experiment, sha256_dir(root / "models" / "toy"))
    assert trained is not None and trained.data.tags["elmo.stage"] == "train"
    client.delete_run(trained.info.run_id)  # as if trained before runs were tagged, or its store was lost
    try:
        with pytest.raises(StageError, match=r"models/toy: no finished MLflow run of experiment 'toy' trained this "
                                             r"model .*dvc repro --force train"):
            register_models(scenario.params.register, scenario.params.mlflow, root)
        assert [v.version for v in store.versions(client, MODEL_NAME)] == [1, 2, 3] and champion(client) == 3
    finally:
        sh(root, "git", "checkout", "-q", "--", ".")
        sh(root, "dvc", "checkout", "-q", "--force")
    assert output_hashes(root) == scenario.hashes[3]


def test_registering_the_same_model_again_creates_no_version(scenario, client) -> None:
    from elmo.registry.register import register_models

    report = register_models(scenario.params.register, scenario.params.mlflow, scenario.root)
    assert report["models"]["toy"]["new"] is False and report["models"]["toy"]["version"] == 3
    assert report["models"]["toy"]["promoted"] is False and champion(client) == 3
    assert [v.version for v in store.versions(client, MODEL_NAME)] == [1, 2, 3]
    # a registry left without a champion (a run stopped between registering and moving the alias)
    client.delete_registered_model_alias(MODEL_NAME, "champion")
    report = register_models(scenario.params.register, scenario.params.mlflow, scenario.root)
    assert report["models"]["toy"]["promoted"] is True and champion(client) == 3
    assert [v.version for v in store.versions(client, MODEL_NAME)] == [1, 2, 3]
    sh(scenario.root, "git", "checkout", "--", "metrics/register.json")


def test_register_refuses_a_model_that_dvc_lock_does_not_record(scenario, client) -> None:
    from elmo.registry.register import register_models

    model = scenario.root / "models" / "toy" / "model.json"
    original = model.read_bytes()
    model.write_bytes(original + b" ")
    try:
        with pytest.raises(StageError, match=r"models/toy: differs from what .*dvc.lock records for stage 'train'"):
            register_models(scenario.params.register, scenario.params.mlflow, scenario.root)
    finally:
        model.write_bytes(original)
    assert [v.version for v in store.versions(client, MODEL_NAME)] == [1, 2, 3]


# --- rollback ---------------------------------------------------------------------------------

def test_rollback_to_version_1_restores_its_exact_files_and_moves_champion(scenario, client) -> None:
    assert champion(client) == 3 and output_hashes(scenario.root) == scenario.hashes[3]
    report = rb.rollback(scenario.params.register, scenario.params.mlflow, scenario.root, "1")
    assert report["commit"] == scenario.commits[1]
    assert output_hashes(scenario.root) == scenario.hashes[1]  # sha256 of data and model files
    for f in ("dvc.lock", "toy.yaml", "metrics/toy.json"):
        assert (scenario.root / f).read_bytes() == gitrepo.show(scenario.root, scenario.commits[1], f)
    assert champion(client) == 1 and report["champion"][MODEL_NAME] == {"from": 3, "to": 1}
    v1 = store.get(client, MODEL_NAME, 1)
    assert v1.tags["champion.previous"] == "3" and "rollback --to 1" in v1.tags["champion.reason"]
    assert "up to date" in sh(scenario.root, "dvc", "status").stdout  # data, lock and params agree
    assert gitrepo.head(scenario.root) == scenario.commits[3]  # HEAD and code untouched


def test_rolling_forward_again_restores_the_latest(scenario, client, monkeypatch) -> None:
    assert champion(client) == 1
    result = elmo(monkeypatch, scenario.root, "rollback", "--to", "3")  # the CLI, as a user types it
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["champion"][MODEL_NAME] == {"from": 1, "to": 3}
    assert output_hashes(scenario.root) == scenario.hashes[3]
    assert git_status(scenario.root) == ""  # back exactly at the committed state
    assert champion(client) == 3


def test_rollback_to_a_git_revision_restores_its_files_and_the_alias_it_recorded(scenario, client) -> None:
    report = rb.rollback(scenario.params.register, scenario.params.mlflow, scenario.root, "HEAD~1")  # run 2's commit
    assert report["commit"] == scenario.commits[2]
    # run 2 made v2, but v2 was worse and the champion stayed v1: that is what the commit recorded
    assert output_hashes(scenario.root) == scenario.hashes[2] and champion(client) == scenario.champion_after[2] == 1
    rb.rollback(scenario.params.register, scenario.params.mlflow, scenario.root, "main")
    assert output_hashes(scenario.root) == scenario.hashes[3] and champion(client) == 3
    assert git_status(scenario.root) == ""


def test_rollback_round_trip_leaves_every_alias_where_it_started(scenario, client) -> None:
    """`--to 1` then `--to <a commit whose own version was not champion>` and back to main: the alias
    is where each commit recorded it, never promoted to the version a commit merely made."""
    def aliases() -> dict[int, tuple[str, ...]]:
        return {v.version: v.aliases for v in store.versions(client, MODEL_NAME)}

    before = aliases()
    assert champion(client) == 3
    rb.rollback(scenario.params.register, scenario.params.mlflow, scenario.root, "1")
    assert champion(client) == 1
    rb.rollback(scenario.params.register, scenario.params.mlflow, scenario.root, scenario.commits[2])
    assert champion(client) == 1 and output_hashes(scenario.root) == scenario.hashes[2]
    rb.rollback(scenario.params.register, scenario.params.mlflow, scenario.root, "main")
    assert aliases() == before and champion(client) == 3
    assert git_status(scenario.root) == ""


def test_rollback_refuses_uncommitted_changes_and_changes_nothing(scenario, client, monkeypatch) -> None:
    root = scenario.root
    toy = root / "toy.yaml"
    original = toy.read_bytes()
    toy.write_bytes(original + b"# edited\n")
    try:
        with pytest.raises(StageError, match=r"refusing to roll back to toy-ynat v1: uncommitted changes in toy.yaml"):
            rb.rollback(scenario.params.register, scenario.params.mlflow, root, "1")
        assert toy.read_bytes() == original + b"# edited\n"
        assert output_hashes(root) == scenario.hashes[3] and champion(client) == 3
    finally:
        toy.write_bytes(original)
    model = root / "models" / "toy" / "weights.bin"
    weights = model.read_bytes()
    model.write_bytes(b"retrained by hand")
    try:
        result = elmo(monkeypatch, root, "rollback", "--to", "1")
        assert result.exit_code == 2
        assert "models/toy differs from dvc.lock" in result.stderr and "nothing was changed" in result.stderr
        assert model.read_bytes() == b"retrained by hand" and champion(client) == 3
        assert (root / "dvc.lock").read_bytes() == gitrepo.show(root, scenario.commits[3], "dvc.lock")
    finally:
        model.write_bytes(weights)
    assert git_status(root) == ""


def test_rollback_in_a_fresh_clone_works_from_the_remote_alone(scenario, client) -> None:
    clone = scenario.base / "clone"
    sh(scenario.base, "git", "clone", "-q", str(scenario.root), str(clone))
    assert not (clone / ".dvc" / "cache").exists() and not (clone / "models" / "toy").exists()
    params = load_params(clone / "params.yaml")
    report = rb.rollback(params.register, params.mlflow, clone, "1")
    assert output_hashes(clone) == scenario.hashes[1]
    assert champion(client) == 1 and report["champion"][MODEL_NAME] == {"from": 3, "to": 1}
    rb.rollback(params.register, params.mlflow, clone, "3")  # and forward again, from the same remote
    assert output_hashes(clone) == scenario.hashes[3] and champion(client) == 3
    assert git_status(clone) == ""


def test_rollback_refuses_when_neither_cache_nor_remote_holds_the_data(scenario, client, monkeypatch) -> None:
    clone = scenario.base / "clone-empty-remote"
    empty = scenario.base / "empty-remote"
    empty.mkdir()
    sh(scenario.base, "git", "clone", "-q", str(scenario.root), str(clone))
    sh(clone, "dvc", "remote", "modify", "--local", "store", "url", str(empty))  # config.local: not tracked
    result = elmo(monkeypatch, clone, "rollback", "--to", "2")
    assert result.exit_code == 2, result.output
    assert "neither in the DVC cache nor in DVC remote 'store'" in result.stderr
    assert "data/prepared.txt" in result.stderr and "models/toy" in result.stderr
    assert "nothing was changed" in result.stderr
    assert git_status(clone) == "" and not (clone / "models" / "toy").exists()
    assert champion(client) == 3
    shutil.rmtree(clone)


def test_list_shows_versions_metrics_commits_data_hashes_and_champion(scenario, monkeypatch) -> None:
    result = elmo(monkeypatch, scenario.root, "rollback", "--list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("toy-ynat  (champion: v3; dev.macro_f1, higher is better)")
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == {"v1", "v2", "v3"}
    for n in (1, 2, 3):
        assert gitrepo.short(scenario.commits[n]) in rows[f"v{n}"]  # the commit whose dvc.lock made it
        assert gitrepo.short(scenario.head_before[n]) in rows[f"v{n}"]  # the code it was made with
        assert f"{RUNS[n - 1][1]:.6g}" in rows[f"v{n}"] and "data/prepared.txt=" in rows[f"v{n}"]
    assert rows["v3"].split()[1:3] == ["*", "*"]  # champion, and what the workspace holds
    as_json = json.loads(elmo(monkeypatch, scenario.root, "rollback", "--list", "--json").stdout)
    by_version = {r["version"]: r for r in as_json}
    assert by_version[3]["champion"] and not by_version[1]["champion"]
    assert by_version[1]["data_commit"] == scenario.commits[1]
    assert by_version[2]["metrics"]["dev.macro_f1"] == 0.6


def test_unknown_targets_are_clear_errors(scenario, client, monkeypatch) -> None:
    with pytest.raises(StageError, match=r"toy-ynat has no version 42 \(versions: 1, 2, 3\)"):
        rb.rollback(scenario.params.register, scenario.params.mlflow, scenario.root, "42")
    with pytest.raises(StageError, match="neither a model version .* nor a git revision"):
        rb.rollback(scenario.params.register, scenario.params.mlflow, scenario.root, "no-such-branch")
    with pytest.raises(StageError, match="'elmo-bilm' is not a registered model of this project"):
        rb.rollback(scenario.params.register, scenario.params.mlflow, scenario.root, "elmo-bilm:1")
    result = elmo(monkeypatch, scenario.root, "rollback")
    assert result.exit_code == 2 and "exactly one of --list or --to" in result.stderr
    assert champion(client) == 3 and git_status(scenario.root) == ""


def test_a_version_whose_run_was_never_committed_cannot_be_restored(scenario, client) -> None:
    root = scenario.root
    from elmo.registry.register import register_models

    write_toy_params(root, rows=6, quality=0.9)
    sh(root, "dvc", "repro", "-q", "train")
    # v4 (better: champion), but the run is not committed
    register_models(scenario.params.register, scenario.params.mlflow, root)
    try:
        assert champion(client) == 4
        with pytest.raises(StageError, match="no commit's dvc.lock records toy-ynat v4 .*never committed"):
            rb.rollback(scenario.params.register, scenario.params.mlflow, root, "4")
    finally:
        sh(root, "git", "checkout", "-q", "--", ".")
        sh(root, "dvc", "checkout", "-q", "--force")
        rb.rollback(scenario.params.register, scenario.params.mlflow, root, "3")
    assert output_hashes(root) == scenario.hashes[3] and champion(client) == 3
