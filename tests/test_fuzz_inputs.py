"""Fuzz-style: hostile params files and task data files never make a traceback escape the CLI.

Seeded and bounded (a few hundred cases, seconds): random bytes, truncations, byte flips and values of
the wrong type. Every case must end with exit status 0 or 2 (one ``error:`` line), never an exception.
Output paths set onto an input or another output must end with 2 and leave every file as it was.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from elmo.cli import app
from elmo.errors import USER_ERRORS
from elmo.params import load_params
from elmo.params.guard import STAGES, Use, stage_uses
from elmo.task.data import read_records

SEED = 20261202
WRONG = [True, False, None, -1, 0, 2**64, 1e309, -1e309, 3.5, "", "x", "../x", "/abs", "\x00", [], [1, "a"], {},
         {"a": 1}, "2019-13", "true", "1e3"]


def _cli_is_clean(*args: str) -> int:
    res = CliRunner().invoke(app, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, repr(res.exception))
    assert res.exit_code in (0, 2), (args, res.exit_code, res.output[-500:])
    assert "Traceback" not in res.output
    if res.exit_code == 2:
        assert [line for line in res.output.splitlines() if line.startswith("error: ")], res.output[-500:]
    return res.exit_code


def _mutate(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0 or not data:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
    if kind == 1:  # truncated
        return data[: rng.randrange(len(data))]
    if kind == 2:  # bytes flipped
        out = bytearray(data)
        for _ in range(rng.randrange(1, 8)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    cut = rng.randrange(len(data))  # a slice of the file spliced elsewhere
    return data[:cut] + data[rng.randrange(len(data)):][:200] + data[cut:]


def _leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, (*path, k))
    else:
        yield path


def _with_wrong_value(params: dict, rng: random.Random) -> dict:
    out = json.loads(json.dumps(params))
    path = rng.choice(list(_leaves(out)))
    node = out
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = rng.choice(WRONG)
    return out


def test_params_loader_never_lets_a_traceback_out(tmp_path: Path, repo_root: Path) -> None:
    rng = random.Random(SEED)
    real = (repo_root / "params.yaml").read_bytes()
    params = yaml.safe_load(real)
    f = tmp_path / "params.yaml"
    codes = []
    for i in range(160):
        if i % 2:
            f.write_bytes(_mutate(real, rng))
        else:
            f.write_text(yaml.safe_dump(_with_wrong_value(params, rng), allow_unicode=True), encoding="utf-8")
        codes.append(_cli_is_clean("params", "show", "--params", str(f)))
    assert codes.count(2) > 80  # most of them are refused ...
    f.write_bytes(real)
    assert _cli_is_clean("params", "show", "--params", str(f)) == 0  # ... and the real file is fine


def _dataset(fmt: str) -> bytes:
    rows = [{"guid": f"g{i}", "title": f"제목 {i} 경제 뉴스", "label": ["경제", "정치", 2][i % 3]} for i in range(12)]
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2).encode()
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    sep = "," if fmt == "csv" else "\t"
    return ("guid" + sep + "title" + sep + "label\n" + "".join(
        sep.join([r["guid"], '"' + r["title"] + '"', str(r["label"])]) + "\n" for r in rows)).encode()


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "tsv"])
def test_task_readers_raise_only_user_errors(tmp_path: Path, fmt: str) -> None:
    rng = random.Random(f"{SEED}-{fmt}")
    good = _dataset(fmt)
    f = tmp_path / f"data.{fmt}"
    outcomes = {"read": 0, "refused": 0}
    for _ in range(120):
        f.write_bytes(_mutate(good, rng))
        for policy in ("error", "skip"):
            try:
                read_records(f, text_field="title", label_field="label", id_field="guid", invalid_records=policy)
                outcomes["read"] += 1
            except USER_ERRORS:
                outcomes["refused"] += 1
    assert outcomes["read"] and outcomes["refused"]


def test_fetch_task_cli_on_hostile_files(tmp_path: Path, monkeypatch) -> None:
    rng = random.Random(f"{SEED}-cli")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    codes = []
    for i in range(20):
        fmt = ["json", "jsonl", "csv", "tsv"][i % 4]
        (tmp_path / "src" / f"train.{fmt}").write_bytes(_dataset(fmt))
        (tmp_path / "src" / f"dev.{fmt}").write_bytes(_mutate(_dataset(fmt), rng))
        task = {"name": f"fuzz{i}", "source": "src", "train_file": f"train.{fmt}", "dev_file": f"dev.{fmt}"}
        if i % 6 == 5:
            task["label_field"] = rng.choice(WRONG)  # a wrong type in the task section itself
        (tmp_path / "params.yaml").write_text(yaml.safe_dump({"finetune": {"task": task}}, allow_unicode=True))
        codes.append(_cli_is_clean("fetch_task"))
    assert 0 in codes and 2 in codes


# --- output-path collisions (elmo/params/guard.py) -----------------------------------------------

def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def _collidable_pairs(params) -> list[tuple[Use, Use, set[str]]]:
    """Pairs that must never be equal or nested: two outputs, or an output and an input of its stage."""
    uses: dict[str, Use] = {}
    stages: dict[str, set[str]] = {}
    for stage in STAGES:
        for u in stage_uses(params, stage):
            if "[" not in u.key:  # code_paths[i]: not a dotted key `params set` can reach
                uses.setdefault(u.key, u)
                stages.setdefault(u.key, set()).add(stage)
    pairs = []
    for a in uses.values():
        for b in uses.values():
            if a.key < b.key and (a.output or b.output) and (a.output and b.output or stages[a.key] & stages[b.key]):
                pairs.append((a, b, (stages[a.key] | stages[b.key]) - {"rollback"}))
    return pairs


def _value(key: str, path: str) -> str:
    return f"sqlite:///{path}" if key == "mlflow.tracking_uri" else path


def test_output_path_collisions_are_refused_and_change_nothing(tmp_path: Path, repo_root: Path, monkeypatch) -> None:
    """Seeded pairs of the stages' path params set equal or nested (as written, or absolute so only the
    filesystem check sees it): `params set` and the stage both exit 2, nothing traced back, no file changed."""
    rng = random.Random(f"{SEED}-collision")
    monkeypatch.chdir(tmp_path)
    for name in ("params.yaml", "dvc.yaml"):
        (tmp_path / name).write_bytes((repo_root / name).read_bytes())
    (tmp_path / "data/raw/petitions").mkdir(parents=True)
    (tmp_path / "data/raw/petitions/petitions_2019-04").write_text("{}\n")
    real = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    pairs = _collidable_pairs(load_params(repo_root / "params.yaml"))
    for i in range(20):
        a, b, stages = rng.choice(pairs)
        if rng.random() < 0.5:
            a, b = b, a  # a is the one changed
        path = {0: b.path, 1: f"{b.path}/sub", 2: str(Path(b.path).parent) if "/" in b.path else "."}[i % 3]
        absolute = i % 4 == 3
        if absolute:
            path = str(tmp_path / path)
        (tmp_path / "params.yaml").write_bytes((repo_root / "params.yaml").read_bytes())
        before = _tree(tmp_path)
        args = [f"{a.key}={_value(a.key, path)}"] + (["allow_paths_outside_workspace=true"] if absolute else [])
        assert _cli_is_clean("params", "set", *args) == 2, (a, b, path)
        assert _tree(tmp_path) == before, (a, b, path)
        data = json.loads(json.dumps(real))
        node = data
        *parents, last = a.key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = _value(a.key, path)
        data["allow_paths_outside_workspace"] = absolute
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        before = _tree(tmp_path)
        stage = sorted(stages)[0] if stages else None
        assert _cli_is_clean(*([stage] if stage else ["params", "show"])) == 2, (stage, a, b, path)
        assert _tree(tmp_path) == before, (stage, a, b, path)
    (tmp_path / "params.yaml").write_bytes((repo_root / "params.yaml").read_bytes())
