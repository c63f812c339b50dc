"""``elmo rollback --list``: every version of every declared model, as rows and as a table.

A row has the version's metrics, the commit its code ran at (tag ``git.commit``), the commit whose
``dvc.lock`` made it (found through git history), its data hashes, and whether it is the champion
and what the workspace has checked out.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from elmo import gitrepo, tracking
from elmo.errors import StageError
from elmo.params.mlflow import MlflowParams
from elmo.params.register import RegisterParams
from elmo.registry import store
from elmo.registry.history import LockHistory, champions_at, commit_of, version_at
from elmo.registry.lockfile import read_lock


def list_versions(p: RegisterParams, mlflow_params: MlflowParams, root: Path) -> list[dict[str, Any]]:
    """Every version of every declared model: metrics, commits, data hashes, champion, workspace."""
    root = Path(root).resolve()
    client = tracking.registry_client(mlflow_params, root, create=False)
    history = LockHistory(root) if gitrepo.is_repo(root) else None
    try:
        workspace = read_lock(root)
    except StageError:
        workspace = None
    rows = []
    champions: dict[str, dict[str, int]] = {}  # commit -> the aliases it recorded
    for spec in p.models.values():
        versions = store.versions(client, spec.name)
        champ = store.by_alias(client, spec.name, p.alias)
        current = version_at(workspace, spec, versions) if workspace else None
        for v in versions:
            data_commit = commit_of(history, v) if history else None
            if data_commit and data_commit not in champions:
                champions[data_commit] = champions_at(root, data_commit, p.report)
            rows.append({
                "model": spec.name, "version": v.version,
                "champion": bool(champ and champ.version == v.version),
                "in_workspace": bool(current and current.version == v.version),
                "metric": spec.metric, "value": v.metric(spec.metric),
                "higher_is_better": spec.higher_is_better,
                "metrics": {k[len("metric."):]: float(x) for k, x in v.tags.items() if k.startswith("metric.")},
                "registered": time.strftime("%Y-%m-%d %H:%M", time.localtime(v.created_ms / 1000)),
                "code_commit": v.tags.get("git.commit"), "code_dirty": v.tags.get("git.dirty") == "true",
                "data_commit": data_commit,
                # the alias as that commit recorded it (the register report committed with it)
                "champion_at_commit": champions.get(data_commit, {}).get(spec.name) if data_commit else None,
                "model_path": v.tags.get("dvc.model_path"), "model_md5": v.model_md5,
                "data": v.json_tag("dvc.data"), "params_md5": v.tags.get("dvc.params_md5"),
                "previous_champion": v.tags.get("champion.previous"),
            })
    return rows


def format_versions(rows: list[dict[str, Any]], p: RegisterParams) -> str:
    lines: list[str] = []
    for spec in p.models.values():
        mine = [r for r in rows if r["model"] == spec.name]
        champ = next((r["version"] for r in mine if r["champion"]), None)
        lines.append(f"{spec.name}  ({p.alias}: {('v' + str(champ)) if champ else 'none'}; "
                     f"{spec.metric}, {'higher' if spec.higher_is_better else 'lower'} is better)")
        if not mine:
            lines.append("  no versions registered yet")
            continue
        header = ["version", p.alias, "workspace", spec.metric, "registered", "code", "data commit",
                  f"{p.alias} then", "model md5", "data"]
        table = [header]
        for r in mine:
            value = "-" if r["value"] is None else f"{r['value']:.6g}"
            data = " ".join(f"{k}={str(m)[:8]}" for k, m in sorted(r["data"].items())) or "-"
            code = gitrepo.short(r["code_commit"]) + ("+dirty" if r["code_dirty"] else "")
            table.append([f"v{r['version']}", "*" if r["champion"] else "", "*" if r["in_workspace"] else "",
                          value, r["registered"], code,
                          gitrepo.short(r["data_commit"]) if r["data_commit"] else "not committed",
                          f"v{r['champion_at_commit']}" if r["champion_at_commit"] else "-",
                          str(r["model_md5"] or "-")[:8], data])
        widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
        for row in table:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    return "\n".join(lines)
