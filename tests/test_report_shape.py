"""One report shape for every stage (elmo/stages/__init__.py): ``stage``, ``outputs``, ``metrics_file``
and the stage's declared fields, nothing else. The stages' real reports are checked in
tests/test_stage_contract.py (``test_report_shape_of_every_stage``); here the validator and builder."""

from __future__ import annotations

import pytest

from elmo.params import load_params
from elmo.stages import (
    COMMON_FIELDS,
    METRICS_PARAM,
    REPORT_FIELDS,
    STAGES,
    ReportShapeError,
    check_report,
    stage_report,
)


@pytest.fixture(scope="module")
def params(repo_root):
    return load_params(repo_root / "params.yaml", "ynat")


def fields(stage: str) -> dict:
    return dict.fromkeys(REPORT_FIELDS[stage], 0)


@pytest.mark.parametrize("stage", STAGES)
def test_report_shape_from_the_builder(params, stage: str) -> None:
    report = stage_report(stage, params, fields(stage))
    assert list(report)[:3] == list(COMMON_FIELDS) and report["stage"] == stage
    if stage in METRICS_PARAM:
        assert report["metrics_file"] and report["metrics_file"] not in report["outputs"].values()
    else:
        assert report["metrics_file"] is None
    assert report["outputs"] and all(not p.startswith("/") for p in report["outputs"].values())


def test_report_shape_outputs_are_params_paths(params) -> None:
    assert stage_report("vocab", params, fields("vocab"))["outputs"] == {
        "vocab.out_dir": params.vocab.out_dir, "vocab.arrays_dir": params.vocab.arrays_dir}
    assert stage_report("finetune", params, fields("finetune"))["metrics_file"] == params.finetune.metrics
    assert stage_report("fetch_task", params, fields("fetch_task"))["outputs"] == {
        "finetune.task.data_dir": params.finetune.task.data_dir}


@pytest.mark.parametrize("stage", STAGES)
def test_report_shape_refuses_a_stray_or_missing_key(params, stage: str) -> None:
    good = stage_report(stage, params, fields(stage))
    with pytest.raises(ReportShapeError, match=r"stray keys \['out_dir'\], missing keys \[\]"):
        check_report({**good, "out_dir": "models/x"})
    missing = {k: v for k, v in good.items() if k != REPORT_FIELDS[stage][0]}
    with pytest.raises(ReportShapeError, match=rf"stray keys \[\], missing keys \['{REPORT_FIELDS[stage][0]}'\]"):
        check_report(missing)
    with pytest.raises(ReportShapeError, match="missing keys"):
        stage_report(stage, params, {k: v for k, v in fields(stage).items() if k != REPORT_FIELDS[stage][-1]})


def test_report_shape_refuses_a_bad_common_field(params) -> None:
    good = stage_report("clean", params, fields("clean"))
    with pytest.raises(ReportShapeError, match="stage is 'clean2'"):
        check_report({**good, "stage": "clean2"})
    with pytest.raises(ReportShapeError, match="metrics_file None"):
        check_report({**good, "metrics_file": None})
    with pytest.raises(ReportShapeError, match="outputs must map"):
        check_report({**good, "outputs": ["data/interim/petitions.parquet"]})
    with pytest.raises(ReportShapeError, match=r"may not be named \['stage'\]"):
        stage_report("clean", params, {**fields("clean"), "stage": "clean"})
