"""Every pipeline run's artifacts: a markdown summary and links to the MLflow runs.

The summary has what each stage did (cached / ran / failed / not run, seconds, cache key), one row
per task (its fetch_task@/finetune@ stages, its metric and registered classifier), each
registered model's champion and what moved (register's report, ``register.report``), and every DVC
metric of the workspace beside its value at git HEAD — the clean report, perplexities, macro-F1,
the register report, whatever files dvc.yaml declares as metrics — so a change is visible at a
glance. MLflow links point at the runs this flow run started (or, when every stage
was cached, at the latest run of each stage).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact

from elmo import dvcrepo
from elmo.params import Params
from elmo.tracking import client as tracking_client, resolve_tracking_uri

SUMMARY_KEY = "pipeline-summary"


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def stage_table(results: list[dict[str, Any]]) -> str:
    lines = ["| stage | outcome | seconds | what happened | cache key |", "|---|---|---:|---|---|"]
    for r in results:
        key = (r.get("key") or "")[len("dvc-stage-"):][:12] or "—"
        seconds = r.get("seconds")
        lines.append(
            f"| {_cell(r['stage'])} | **{r['outcome']}** | {_cell(seconds)} | {_cell(r.get('action'))} | `{key}` |"
        )
    return "\n".join(lines)


def metrics(root: Path) -> tuple[dict[str, dict[str, dict[str, Any]]], str | None]:
    """DVC metrics of the workspace with their values at HEAD: {file: {metric: {new, old, diff}}}.

    Returns the table and a note when something could not be read (no commit yet, a missing file).
    """
    return dvcrepo.metrics_diff(root)


def metrics_markdown(diff: dict[str, dict[str, dict[str, Any]]]) -> str:
    if not diff:
        return "_No DVC metrics yet._"
    parts = []
    for path in sorted(diff):
        parts.append(f"**{path}**\n\n| metric | value | at HEAD | change |\n|---|---:|---:|---:|")
        for name in sorted(diff[path]):
            m = diff[path][name]
            parts.append(f"| {_cell(name)} | {_cell(m.get('new'))} | {_cell(m.get('old'))} | {_cell(m.get('diff'))} |")
        parts.append("")
    return "\n".join(parts).rstrip()


def registry(params: Params, root: Path) -> dict[str, Any] | None:
    """register's report (``register.report``: per model the version, the champion, what moved), or
    None where register has not written one yet (or it is not readable JSON)."""
    try:
        report = json.loads((root / params.register.report).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and isinstance(report.get("models"), dict) else None


def _moved(m: dict[str, Any]) -> str:
    before, after = m.get("previous_champion"), m.get("champion")
    if m.get("promoted"):
        return f"**v{before} → v{after}**" if before is not None else f"**→ v{after}** (first)"
    return "no" if after is not None else "no champion"


def registry_markdown(report: dict[str, Any] | None, results: list[dict[str, Any]]) -> str:
    """One row per registered model: the version registered (or found), the champion, whether it moved."""
    if report is None:
        return "_Nothing registered yet._"
    alias = report.get("alias", "champion")
    ran = any(r["stage"] == "register" and r["outcome"] == "ran" for r in results)
    lines = [] if ran else ["_register did not run this time; its last report:_", ""]
    lines += [f"| model | registered | version | {alias} | moved |", "|---|---|---:|---:|---|"]
    for key, m in report["models"].items():
        version = f"v{m.get('version')}" + (" (new)" if m.get("new") else " (existing)")
        champ = f"v{m['champion']}" if m.get("champion") is not None else "—"
        lines.append(f"| {_cell(key)} | {_cell(m.get('name'))} | {version} | {champ} | {_moved(m)} |")
    return "\n".join(lines)


def tasks_markdown(results: list[dict[str, Any]], report: dict[str, Any] | None) -> str:
    """One row per task (the ``finetune@<name>`` stages of dvc.yaml's foreach): what its fetch and finetune
    did and its registered classifier (register's report keys a task's model by the task's name)."""
    outcome = {r["stage"]: r["outcome"] for r in results}
    names = [r["stage"].split("@", 1)[1] for r in results if r["stage"].startswith("finetune@")]
    if not names:
        return "_No task stages in this run._"
    models = (report or {}).get("models") or {}
    lines = ["| task | fetch_task | finetune | metric | registered | champion |", "|---|---|---|---:|---|---:|"]
    for name in names:
        m = models.get(name) or {}
        metric = f"{m['metric']} {_cell(m.get('value'))}" if m.get("metric") else None
        version = f"{m['name']} v{m['version']}" if m.get("version") is not None else None
        champ = f"v{m['champion']}" if m.get("champion") is not None else None
        cells = [name, outcome.get(f"fetch_task@{name}"), outcome.get(f"finetune@{name}"), metric, version, champ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def mlflow_runs(params: Params, root: Path, since: dt.datetime) -> list[dict[str, Any]]:
    """MLflow runs started since ``since``; else the latest run of each stage. [] when no store yet."""
    uri = resolve_tracking_uri(params.mlflow, root)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        return []
    client = tracking_client(uri)
    exp = client.get_experiment_by_name(params.mlflow.experiment)
    if exp is None:
        return []
    ms = int(since.timestamp() * 1000)
    fresh = client.search_runs([exp.experiment_id], filter_string=f"attributes.start_time >= {ms}",
                               order_by=["attributes.start_time DESC"], max_results=50)
    runs, is_fresh = (fresh, True) if fresh else (None, False)
    if runs is None:
        latest: dict[str, Any] = {}
        for run in client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=200):
            latest.setdefault(run.data.tags.get("elmo.stage", run.info.run_name), run)
        runs = list(latest.values())
    out = []
    for run in runs:
        out.append({
            "stage": run.data.tags.get("elmo.stage", ""),
            "run_id": run.info.run_id,
            "name": run.info.run_name,
            "status": run.info.status,
            "fresh": is_fresh,
            "url": f"{params.flows.mlflow_ui}/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}",
        })
    return out


def render(*, root: Path, flow_run_name: str, started: dt.datetime, seconds: float,
           results: list[dict[str, Any]], error: str | None, metrics_diff: dict, metrics_note: str | None,
           runs: list[dict[str, Any]], runs_note: str | None = None,
           record: dict[str, Any] | None = None, registry: dict[str, Any] | None = None) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    tally = ", ".join(f"{n} {k}" for k, n in counts.items()) or "no stages"
    verdict = "failed" if error else "succeeded"
    md = [
        f"# Pipeline run `{flow_run_name}` {verdict}",
        "",
        f"Workspace `{root}`, started {started.isoformat(timespec='seconds')}, took {seconds:.1f} s: {tally}.",
        "",
        "## Stages",
        "",
        stage_table(results),
    ]
    if error:
        md += ["", "## Error", "", "```", error.strip(), "```"]
    md += ["", "## Tasks", "", tasks_markdown(results, registry)]
    md += ["", "## Registry", "", registry_markdown(registry, results)]
    md += ["", "## Record", "", record_markdown(record, failed=bool(error))]
    md += ["", "## Metrics (DVC)", ""]
    if metrics_note:
        md += [f"_{metrics_note}_", ""]
    md.append(metrics_markdown(metrics_diff))
    md += ["", "## MLflow", ""]
    if runs_note:
        md.append(f"_{runs_note}_")
    elif not runs:
        md.append("_No MLflow runs in this workspace yet._")
    else:
        if not runs[0]["fresh"]:
            md += ["_No stage started an MLflow run this time; the latest run of each stage:_", ""]
        for r in runs:
            md.append(f"- [{r['stage'] or 'run'}: {r['name']}]({r['url']}) ({r['status'].lower()})")
    return "\n".join(md) + "\n"


def record_markdown(record: dict[str, Any] | None, *, failed: bool) -> str:
    """What the run committed and pushed (elmo/registry/record.py), in a few lines."""
    if record is None:
        return "_Nothing recorded: the run failed, so the previous record stands._" if failed else "_Not recorded._"
    if record.get("reason"):
        return f"_Not recorded: {record['reason']}._"
    lines = [f"- commit `{str(record['commit'])[:8]}` on `{record.get('branch')}`: "
             + ", ".join(f"`{f}`" for f in record["files"]) if record.get("commit")
             else "- no commit: the run changed nothing git keeps"]
    lines += [f"- registered: {m}" for m in record.get("registered") or []]
    if record.get("push"):
        lines.append(f"- `dvc push` to `{record['push']['remote']}`: {record['push']['pushed']} file(s)")
    if record.get("dirty"):
        lines.append(f"- uncommitted code changes (not recorded): {', '.join(record['dirty'][:10])}")
    return "\n".join(lines)


def artifact_key(text: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", text.lower())).strip("-")


def publish(markdown: str, runs: list[dict[str, Any]], *, failed: bool) -> None:
    """Attach the summary and the MLflow links to the current flow run."""
    create_markdown_artifact(key=SUMMARY_KEY, markdown=markdown,
                             description="elmo-ko pipeline run: " + ("failed" if failed else "succeeded"))
    for r in runs:
        create_link_artifact(key=artifact_key(f"mlflow-{r['stage'] or 'run'}"), link=r["url"],
                             link_text=f"MLflow run {r['name']} ({r['stage']})",
                             description="MLflow run of this pipeline run" if r["fresh"] else "latest MLflow run")
