"""The project's deployments, declared once here; schedules and time zone come from params.yaml.

* ``pipeline/nightly`` — the ``pipeline`` flow every night (``flows.nightly_cron``): reruns what
  changed since (params, code, data), nothing else.
* ``crawl-and-retrain/monthly`` — the ``crawl-and-retrain`` flow once a month
  (``flows.monthly_cron``): recrawls the archive and retrains what the new data changes;
  parameters ``months``, ``preset`` and ``init`` (default ``previous``: continue the last biLM) can be
  set per run from the UI or ``prefect deployment run``.

Two ways to run them (README, "Orchestration with Prefect"):

* :func:`serve` — this process polls the server and runs the flows itself (``python -m flows serve``).
* :func:`deploy` — register them with a work pool; any worker of that pool runs them
  (``python -m flows deploy --pool NAME``, then ``prefect worker start --pool NAME``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.deployments.runner import EntrypointType
from prefect.runner import Runner
from prefect.schedules import Cron

from elmo.params.flows import FlowsParams
from flows import PROJECT_ROOT, pipeline

TAGS = ["elmo-ko"]


@dataclass(frozen=True)
class Spec:
    name: str
    flow: str  # attribute of flows.pipeline
    cron_param: str  # attribute of FlowsParams holding the cron string
    description: str
    parameters: tuple[tuple[str, Any], ...] = ()

    def flow_object(self):
        return getattr(pipeline, self.flow)


SPECS = (
    Spec("nightly", "pipeline", "nightly_cron",
         "Nightly: bring every DVC stage up to date; unchanged stages are cache hits."),
    Spec("monthly", "crawl_and_retrain", "monthly_cron",
         "Monthly: recrawl the petitions archive and retrain what the new data changes.",
         (("months", None), ("preset", None), ("init", "previous"))),
)


def _schedule(spec: Spec, p: FlowsParams):
    return Cron(getattr(p, spec.cron_param), timezone=p.timezone)


def _parameters(spec: Spec, root: Path) -> dict[str, Any]:
    return {"root": str(root), **dict(spec.parameters)}


def build(root: Path, p: FlowsParams) -> list:
    """RunnerDeployments for :func:`prefect.serve` (the flows run in the serving process's venv)."""
    return [
        spec.flow_object().to_deployment(
            name=spec.name,
            schedules=[_schedule(spec, p)],
            parameters=_parameters(spec, root),
            description=spec.description,
            tags=TAGS,
            concurrency_limit=1,
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        for spec in SPECS
    ]


def serve(root: Path, p: FlowsParams) -> None:
    """Serve the deployments until interrupted (Ctrl-C / SIGTERM); their schedules are paused on
    exit, so no scheduled runs pile up while nothing serves them (``serve`` again resumes them).

    What :func:`prefect.serve` does, with one difference: SIGTERM stops the runner exactly like
    Ctrl-C (Prefect's own SIGTERM handler exits from inside its event loop, with tracebacks and
    without reliably pausing the schedules).
    """
    class _Runner(Runner):
        def handle_sigterm(self, *args, **kwargs) -> None:  # signal handler signature
            raise KeyboardInterrupt

    deployments = build(root, p)
    runner = _Runner(limit=1, pause_on_shutdown=True)  # one flow run at a time: one workspace
    for d in deployments:
        runner.add_deployment(d)
    names = ", ".join(f"{d.flow_name}/{d.name}" for d in deployments)
    print(f"serving {names}; start a run from the UI or with `prefect deployment run <name>`; Ctrl-C stops",
          flush=True)

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(_ignore_cancelled)
        await runner.start()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        pause(deployments)


def _ignore_cancelled(loop, context: dict) -> None:
    """The event loop's exception handler while serving: a cancelled task is no error.

    On stop, asyncio cancels the runner's tasks; a connection handler of Prefect's control channel
    that is cancelled then makes CPython 3.11's ``asyncio.streams`` callback call
    ``task.exception()`` on it, which raises ``CancelledError`` and is logged with a traceback
    (3.12 checks ``task.cancelled()`` first). Everything else goes to the default handler.
    """
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


def pause(deployments: list) -> None:
    """Pause the schedules of these (served) deployments."""
    with get_client(sync_client=True) as client:
        for d in deployments:
            client.pause_deployment(client.read_deployment_by_name(f"{d.flow_name}/{d.name}").id)


def deploy(root: Path, p: FlowsParams, pool: str) -> list[str]:
    """Register the deployments with work pool ``pool`` (code from this checkout); returns their ids."""
    ids = []
    for spec in SPECS:
        source_flow = Flow.from_source(source=str(PROJECT_ROOT), entrypoint=f"flows/pipeline.py:{spec.flow}")
        ids.append(str(source_flow.deploy(
            name=spec.name,
            work_pool_name=pool,
            schedules=[_schedule(spec, p)],
            parameters=_parameters(spec, root),
            description=spec.description,
            tags=TAGS,
            concurrency_limit=1,
            build=False,
            push=False,
            print_next_steps=False,
        )))
    return ids
