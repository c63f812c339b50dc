"""params.yaml is loaded through typed models that name the bad key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from elmo.params import ParamsError, load_params, parse_params, set_params


def test_repository_params_validate(repo_root: Path) -> None:
    p = load_params(repo_root / "params.yaml")
    assert p.crawl.out_dir == p.clean.in_dir  # clean reads what crawl writes


def test_unknown_key_is_named_with_file(tmp_path: Path) -> None:
    f = tmp_path / "params.yaml"
    f.write_text("clean:\n  valid_fraktion: 0.1\n")
    with pytest.raises(ParamsError) as e:
        load_params(f)
    assert str(f) in str(e.value) and "clean.valid_fraktion" in str(e.value) and "unknown key" in str(e.value)


def test_unknown_section_is_named() -> None:
    with pytest.raises(ParamsError, match="cleen: unknown key"):
        parse_params({"cleen": {}})


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("crawl:\n  concurrency: lots\n")
    with pytest.raises(ParamsError, match=r"p.yaml: crawl.concurrency: .*'lots'"):
        load_params(f)


def test_out_of_range_is_rejected() -> None:
    with pytest.raises(ParamsError, match="clean.valid_fraction"):
        parse_params({"clean": {"valid_fraction": 1.5}})


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="no such params file"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("crawl: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_set_params_validates_before_writing(tmp_path: Path, repo_root: Path) -> None:
    f = tmp_path / "params.yaml"
    f.write_text((repo_root / "params.yaml").read_text())
    set_params(f, ["clean.valid_fraction=0.1", "crawl.months=[2019-04]"])
    data = yaml.safe_load(f.read_text())
    assert data["clean"]["valid_fraction"] == 0.1 and data["crawl"]["months"] == ["2019-04"]
    before = f.read_text()
    with pytest.raises(ParamsError, match="clean.valid_fraction"):
        set_params(f, ["clean.valid_fraction=2"])
    assert f.read_text() == before


def test_dvc_stage_commands_are_the_cli(repo_root: Path) -> None:
    """Each dvc.yaml stage runs exactly `elmo <stage>` (a per-task stage: `elmo <stage> --task <name>`),
    and that CLI command exists."""
    from typer.main import get_command

    from elmo.cli import app

    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    for name, stage in stages.items():
        if "foreach" in stage:
            assert stage["foreach"] == "${finetune.tasks}", name
            assert stage["do"]["cmd"] == f"elmo {name} --task ${{key}}", name
        else:
            assert stage["cmd"] == f"elmo {name}", name
        assert name in commands, name


def test_set_params_keeps_comments_and_layout(tmp_path: Path, repo_root: Path) -> None:
    f = tmp_path / "params.yaml"
    original = (repo_root / "params.yaml").read_text(encoding="utf-8")
    f.write_text(original, encoding="utf-8")
    set_params(f, ["crawl.source=http://127.0.0.1:8765/petitions_archive/", "crawl.months=[2019-04, 2019-05]"])
    changed = [(a, b) for a, b in zip(original.splitlines(), f.read_text(encoding="utf-8").splitlines()) if a != b]
    assert len(original.splitlines()) == len(f.read_text(encoding="utf-8").splitlines())
    assert [b.split("#")[0].strip() for _, b in changed] == [
        "source: http://127.0.0.1:8765/petitions_archive/",
        "months: [2019-04, 2019-05]",
    ]
    assert "# null = every month named in `files`" in changed[1][1]  # its comment survived


@pytest.mark.parametrize("model, match", [
    ({"projection_dim": 64, "lstm_dim": 32},
     r"presets.small.model: projection_dim: must be smaller than lstm_dim=32, got 64"),
    ({"filters": [[0, 3]]}, r"presets.small.model: filters: width and count must be positive, got \(0, 3\)"),
    ({"adaptive_cutoffs": [5, 3]}, r"presets.small.model: adaptive_cutoffs: must be increasing positive word ids"),
    ({"dropout": 1.0}, r"presets.small.model.dropout: Input should be less than 1"),
])
def test_a_bad_bilm_shape_names_its_key(model, match) -> None:
    """One validator of the biLM's shape (ModelParams): params.yaml's error names the key, and a biLM
    config.json with the same shape fails with the same words (elmo.model.BiLMConfig uses it)."""
    from elmo.model import BiLMConfig

    with pytest.raises(ParamsError, match=match):
        parse_params({"pretrain": {"presets": {"small": {"model": model}}}})
    good = parse_params({}).pretrain.presets["small"].model.model_dump()
    why = match.split("model", 1)[1].lstrip(".: ")
    with pytest.raises(ValueError, match=r"BiLMConfig\." + why):
        BiLMConfig(vocab_size=100, n_chars=50, max_chars=8, **{**good, **model})
