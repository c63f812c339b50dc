"""A tiny, self-contained DVC + git workspace for testing and trying the flows.

Four toy stages, each a few lines of Python (``toystages.py`` in the workspace)::

    prepare (params.yaml: seed; toy.yaml: prepare) ──> train (toy.yaml: train.lr) ──> evaluate (metrics.json)
            └────────────────────────────────────────> count (shards; fan-out capable)

Every execution of a stage (or of a shard) appends a line to ``runs.log`` (not tracked by DVC),
so a test can tell exactly what ran. ``toy.yaml`` also has knobs to make stages fail:
``train.lr <= 0`` fails train with a message on stderr; ``prepare.flaky: N`` fails prepare on its
first N attempts.

    cd tests && python -c "from helpers.toy_workspace import make_toy_workspace; make_toy_workspace('/tmp/toy')"
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

TOY_STAGES = textwrap.dedent('''\
    """Toy stages for flows tests: python toystages.py <stage>."""
    import json
    import pathlib
    import sys

    import yaml


    def _params():
        toy = yaml.safe_load(pathlib.Path("toy.yaml").read_text())
        seed = (yaml.safe_load(pathlib.Path("params.yaml").read_text()) or {}).get("seed", 0)
        return toy, seed


    def _log(what):
        with open("runs.log", "a", encoding="utf-8") as fh:
            fh.write(what + "\\n")


    def prepare():
        toy, seed = _params()
        flaky = pathlib.Path(".flaky-attempts")
        attempts = int(flaky.read_text()) if flaky.exists() else 0
        flaky.write_text(str(attempts + 1))
        _log("prepare")
        if attempts < toy["prepare"].get("flaky", 0):
            sys.exit(f"toy: prepare: flaky failure on attempt {attempts + 1}")
        n = toy["prepare"]["n"]
        pathlib.Path("data").mkdir(exist_ok=True)
        pathlib.Path("data/prepared.txt").write_text("".join(f"{seed + i}\\n" for i in range(n)))


    def train():
        toy, _ = _params()
        _log("train")
        lr = toy["train"]["lr"]
        if lr <= 0:
            sys.exit(f"toy: train: toy.yaml: train.lr must be > 0 (got {lr})")
        xs = [int(x) for x in pathlib.Path("data/prepared.txt").read_text().split()]
        pathlib.Path("model.txt").write_text(f"{sum(xs) * lr}\\n")


    def evaluate():
        toy, _ = _params()
        _log("evaluate")
        m = float(pathlib.Path("model.txt").read_text())
        pathlib.Path("metrics.json").write_text(json.dumps({"score": round(m, toy["evaluate"]["digits"])}))


    # -- count: fan-out capable (the shard protocol of flows/fanout.py) --------------------------
    def plan_shards(params, root):
        lines = (pathlib.Path(root) / "data/prepared.txt").read_text().split()
        return [{"index": i, "lines": lines[i::3]} for i in range(3)]


    def run_shard(params, root, shard):
        _log_at(root, f"count-shard-{shard['index']}")
        return _shard(root, shard)


    def _shard(root, shard):
        part = pathlib.Path(root) / "parts" / f"part-{shard['index']}.txt"
        part.parent.mkdir(exist_ok=True)
        part.write_text(str(sum(int(x) for x in shard["lines"])))
        return {"index": shard["index"], "path": str(part)}


    def finish_shards(params, root, results):
        total = sum(int(pathlib.Path(r["path"]).read_text()) for r in sorted(results, key=lambda r: r["index"]))
        (pathlib.Path(root) / "counts.txt").write_text(f"{total}\\n")
        return {"total": total, "shards": len(results)}


    def _log_at(root, what):
        with open(pathlib.Path(root) / "runs.log", "a", encoding="utf-8") as fh:
            fh.write(what + "\\n")


    def count():
        root = pathlib.Path(".")
        _log("count")
        finish_shards(None, root, [_shard(root, s) for s in plan_shards(None, root)])


    if __name__ == "__main__":
        {"prepare": prepare, "train": train, "evaluate": evaluate, "count": count}[sys.argv[1]]()
''')

DVC_YAML = {
    "stages": {
        "prepare": {
            "cmd": "python toystages.py prepare",
            "deps": ["toystages.py"],
            "params": ["seed", {"toy.yaml": ["prepare"]}],
            "outs": ["data/prepared.txt"],
        },
        "train": {
            "cmd": "python toystages.py train",
            "deps": ["toystages.py", "data/prepared.txt"],
            "params": [{"toy.yaml": ["train"]}],
            "outs": ["model.txt"],
        },
        "evaluate": {
            "cmd": "python toystages.py evaluate",
            "deps": ["toystages.py", "model.txt"],
            "params": [{"toy.yaml": ["evaluate"]}],
            "metrics": [{"metrics.json": {"cache": False}}],
        },
        "count": {
            "cmd": "python toystages.py count",
            "deps": ["toystages.py", "data/prepared.txt"],
            "outs": ["counts.txt"],
        },
    }
}

TOY_PARAMS = {"prepare": {"n": 5, "flaky": 0}, "train": {"lr": 0.5}, "evaluate": {"digits": 2}}

# elmo's params.yaml (validated); the toy stages only read `seed` from it
PARAMS = {
    "seed": 1,
    "flows": {
        "retries": {},
        "retry_delay_s": 0.0,
        "lock_timeout_s": 60.0,
        "dask": {"enabled": False, "stages": {"count": "toystages"}, "n_workers": 1, "processes": False},
    },
}


def _run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True, timeout=120)


def make_toy_workspace(path: str | Path) -> Path:
    """Create the toy workspace at ``path`` (a git repo with DVC initialised, one commit), with a local
    DVC remote beside it (``<path>-remote``): a successful flow run records itself (a commit, a push)."""
    root = Path(path).resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / "toystages.py").write_text(TOY_STAGES, encoding="utf-8")
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False), encoding="utf-8")
    (root / "toy.yaml").write_text(yaml.safe_dump(TOY_PARAMS, sort_keys=False), encoding="utf-8")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False), encoding="utf-8")
    (root / ".gitignore").write_text("runs.log\n.flaky-attempts\n.prefect/\nparts/\n", encoding="utf-8")
    _run(["git", "init", "-q", "-b", "main"], root)
    _run(["git", "config", "user.name", "toy"], root)
    _run(["git", "config", "user.email", "toy@localhost"], root)
    _run([sys.executable, "-m", "dvc", "init", "-q"], root)
    remote = root.parent / f"{root.name}-remote"
    with open(root / ".dvc" / "config", "a", encoding="utf-8") as fh:  # as `dvc config core.analytics false`
        fh.write(f"[core]\n    analytics = false\n    remote = local\n['remote \"local\"']\n    url = {remote}\n")
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-q", "-m", "toy"], root)
    return root


def runs(root: str | Path) -> list[str]:
    """What ran so far (one line per stage or shard execution), and forget it."""
    log = Path(root) / "runs.log"
    if not log.exists():
        return []
    lines = log.read_text(encoding="utf-8").split()
    log.unlink()
    return lines
