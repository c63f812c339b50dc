"""The ``elmo`` command: one sub-command per stage (what dvc.yaml runs), plus tools.

Every stage command reads params.yaml (``--params`` to use another file) from the current
directory, which is the workspace root; the same function runs under DVC and Prefect.
A user error (bad params, bad input data, a failed download) is one line on stderr and exit 2;
an interrupted stage exits 130.
"""

from __future__ import annotations

import errno
import importlib
import json
import re
import sys
import threading
from pathlib import Path

import typer

from elmo.errors import USER_ERRORS, Interrupted, signals_as_interrupt
from elmo.log import configure, stdout_to_stderr
from elmo.params import DEFAULT_PARAMS_FILE, ParamsError, load_params, set_params
from elmo.params.guard import Use, check_command, check_replace, check_stage, check_stages
from elmo.registry.record import repro_and_record


def plain_help(text: str | None) -> str | None:
    """Docstring -> --help text: no reST/Markdown backticks, a paragraph's lines joined (the terminal wraps)."""
    if not text:
        return text
    paragraphs = re.split(r"\n\s*\n", text.strip().replace("`", ""))
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


app = typer.Typer(add_completion=False, no_args_is_help=True, help=plain_help(__doc__))
params_app = typer.Typer(no_args_is_help=True, help="Show or change params.yaml (validated).")
app.add_typer(params_app, name="params")

ParamsOpt = typer.Option(DEFAULT_PARAMS_FILE, "--params", "-p", help="params file")
TaskOpt = typer.Option(None, "--task", "-t", help="the task of finetune.tasks (needed when it has several)")
TASK_STAGES = ("fetch_task", "finetune")  # one run per task (dvc.yaml: fetch_task@<name>, finetune@<name>)


def error_message(err: BaseException) -> str:
    """``err`` as one line; an OSError from the system (read-only, no space, permission, a file
    where a directory belongs) names its path(s) and the errno."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        where = f"{err.filename}" + (f" -> {err.filename2}" if err.filename2 is not None else "")
        code = errno.errorcode.get(err.errno, str(err.errno))
        return f"{where}: {err.strerror} ({code})"
    return str(err)


def _fail(err: BaseException) -> None:
    """Print ``err`` as one error message (no traceback) and exit 2 (130 for an interrupted stage)."""
    typer.secho(f"error: {error_message(err)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(getattr(err, "exit_code", 2))


def run_stage(name: str, params_file: str = DEFAULT_PARAMS_FILE, root: Path | None = None,
              task: str | None = None) -> dict:
    """Load params (``task``: the task of ``finetune.tasks`` fetch_task and finetune work on; None: the
    only one), check its outputs (elmo/params/guard.py), run ``elmo.stages.<name>.run`` and return
    its report (the one entry point).

    Ctrl-C and SIGTERM stop the stage the same way (elmo.errors.signals_as_interrupt): its cleanup
    runs (temporaries, worker processes, the MLflow run marked KILLED) and it raises
    :class:`Interrupted` (exit 130)."""
    configure()
    params = load_params(params_file, task)
    if name in TASK_STAGES and task is None and len(params.finetune.tasks) > 1:
        raise ParamsError(f"{params_file}: finetune.tasks has {len(params.finetune.tasks)} tasks "
                          f"({', '.join(params.finetune.tasks)}): name one with --task")
    root = Path(root or Path.cwd())
    check_stage(name, params, root, Path(params_file).resolve())  # before anything is read or written
    module = importlib.import_module(f"elmo.stages.{name}")
    with signals_as_interrupt() as seen:
        try:
            return module.run(params, root)
        except KeyboardInterrupt as err:
            why = seen.received or str(err) or "SIGINT"
        except SystemExit:  # a library that exits on Ctrl-C (Lightning's trainer.fit)
            if seen.received is None:
                raise
            why = seen.received
    how = "Ctrl-C" if why == "SIGINT" else why
    raise Interrupted(f"{name}: interrupted ({how}); nothing half-written was kept (its outputs are as "
                      "they were before it started); rerun it to go on")


def _stage_command(name: str, help_text: str) -> None:
    def command(params: str = ParamsOpt) -> None:
        _run_stage_command(name, params)

    def task_command(params: str = ParamsOpt, task: str = TaskOpt) -> None:
        _run_stage_command(name, params, task)

    chosen = task_command if name in TASK_STAGES else command
    chosen.__doc__ = help_text
    app.command(name)(chosen)


def _run_stage_command(name: str, params: str, task: str | None = None) -> None:
    try:
        with stdout_to_stderr():  # stdout carries the JSON report only (elmo/log.py)
            report = run_stage(name, params, task=task)
    except (*USER_ERRORS, OSError) as err:
        _fail(err)
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2, default=str))


_stage_command("crawl", "Download the petitions archive months (resumable, verified).")
_stage_command("clean", "Normalise, deduplicate, quarantine and split the petitions (polars).")
_stage_command("tokenize", "Sentence-split and morphologically analyse the petitions.")
_stage_command("vocab", "Build word and character vocabularies and the training arrays.")
_stage_command("pretrain", "Train the biLM (char-CNN, 2-layer LSTMs per direction, tied softmax).")
_stage_command("finetune", "Finetune an ELMo classifier on one labeled task of finetune.tasks (default KLUE YNAT).")
_stage_command("fetch_task", "Download one task's labeled data of finetune.tasks (default: KLUE YNAT train/dev).")


@app.command("repro")
def repro(
    run: str = typer.Option("elmo repro", "--run", help="what the record's commit message calls this run"),
    params: str = ParamsOpt,
) -> None:
    """`dvc repro`, then record the run: a git commit of what it changed (dvc.lock, params.yaml, metrics,
    plots) and `dvc push` (params flows.record). One run at a time per workspace."""
    configure()
    try:
        with stdout_to_stderr():  # dvc's and the stages' output go to stderr; stdout is the record's report
            p = load_params(params)
            report = repro_and_record(Path.cwd(), p.flows.record, run, lock_timeout_s=p.flows.lock_timeout_s,
                                      register_report=p.register.report)
    except USER_ERRORS as err:
        _fail(err)
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2, default=str))


@app.command("embed")
def embed(
    file: Path,
    out: Path = typer.Option(None, "--out", "-o", help="output .npz (default: FILE.elmo.npz)"),
    model: str = typer.Option("models/bilm", "--model", "-m", help="biLM directory or registry URI"),
    mixed: bool = typer.Option(False, "--mixed", help="write the average of the layers instead of every layer"),
    force: bool = typer.Option(False, "--force", help="replace an existing --out file that elmo embed did not write"),
    params: str = ParamsOpt,
) -> None:
    """Write ELMo vectors for each non-empty line of a UTF-8 text file (an .npz, see elmo/embed/elmo.py).

    --out never lands on FILE, the biLM, params.yaml, dvc.yaml, dvc.lock, .git or .dvc, never replaces a
    directory, and replaces an existing file only if embed wrote it (or with --force)."""
    try:
        p = load_params(params)
        dest = out or file.with_name(file.name + ".elmo.npz")
        uses = [Use("FILE", str(file)), Use("--out", str(dest), "file")]
        if not model.startswith(("models:/", "runs:/")):  # a registry URI is no local path
            uses.append(Use("--model", model))
        check_command("embed", uses, Path.cwd(), Path(params).resolve())  # before torch is even imported

        from elmo.embed.elmo import Elmo, embed_file, written_by_embed
        from elmo.text.pipeline import TextPipeline

        check_replace("embed", uses[1], Path.cwd(), force=force, ours=written_by_embed)
        elmo = Elmo.load(model, pipeline=TextPipeline.from_params(p.clean, p.tokenize))
        report = embed_file(elmo, file, dest, layers=not mixed)
    except (*USER_ERRORS, OSError, ValueError) as err:
        _fail(err)
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2))


@app.command("predict")
def predict(
    texts: list[str],
    model: str = typer.Option(None, "--model", "-m", help="classifier directory (default: the task's, "
                              "models/<task name>)"),
    task: str = typer.Option(None, "--task", "-t", help="the task of finetune.tasks whose classifier answers "
                             "(default: the first)"),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    params: str = ParamsOpt,
) -> None:
    """Classify texts: prints each one's label and class probabilities."""
    try:
        from elmo.task.classifier import Classifier

        results = Classifier.load(model or load_params(params, task).finetune.out_dir).predict(texts)
    except (*USER_ERRORS, OSError, ValueError, TypeError) as err:
        _fail(err)
    if as_json:
        typer.echo(json.dumps(results, ensure_ascii=False, indent=2))
        return
    for text, r in zip(texts, results):
        probs = "  ".join(f"{k} {v:.3f}" for k, v in sorted(r["probs"].items(), key=lambda kv: -kv[1]))
        typer.echo(f"{r['label']}\t{text}\n  {probs}")
_stage_command("register", "Register the models in MLflow; move the champion alias only on improvement.")


@app.command("rollback")
def rollback(
    to: str = typer.Option(None, "--to", help="a model version (3 = version 3 of register.primary, "
                           "or elmo-bilm:2) or a git revision (main, HEAD~1, a sha)"),
    list_: bool = typer.Option(False, "--list", help="show the versions, their metrics, commits, "
                               "data hashes and which one is champion"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    params: str = ParamsOpt,
) -> None:
    """Go back (or forward) to a model version: its data, model files and the `champion` alias.

    Restores dvc.yaml, dvc.lock, params and metrics as that version's commit has them, checks
    out its data and models (`dvc checkout`, fetching from the DVC remote what the cache lacks)
    and points `champion` at it. Refuses, changing nothing, on uncommitted changes or missing data.
    """
    if list_ == (to is not None):
        _fail(typer.BadParameter("give exactly one of --list or --to"))
    try:
        p = load_params(params)
        from elmo.registry import rollback as rb, versions

        if list_:
            rows = versions.list_versions(p.register, p.mlflow, Path.cwd())
            out = (json.dumps(rows, ensure_ascii=False, indent=2) if as_json
                   else versions.format_versions(rows, p.register))
        else:
            check_stage("rollback", p, Path.cwd(), params)  # its state file never lands on an input
            report = rb.rollback(p.register, p.mlflow, Path.cwd(), to)
            out = json.dumps(report, ensure_ascii=False, indent=2, default=str)
    except (*USER_ERRORS, OSError) as err:
        _fail(err)
    typer.echo(out)


@params_app.command("show")
def params_show(params: str = ParamsOpt) -> None:
    """Print the validated params, defaults filled in."""
    try:
        p = load_params(params)
    except Exception as err:  # ParamsError
        _fail(err)
    typer.echo(json.dumps(p.model_dump(), ensure_ascii=False, indent=2))


@params_app.command("set")
def params_set(assignments: list[str], params: str = ParamsOpt) -> None:
    """Set dotted.key=value pairs in params.yaml (validated, and every output checked against the
    workspace, before writing)."""
    try:
        set_params(params, assignments, check=lambda p: check_stages(p, Path.cwd(), Path(params).resolve()))
    except (ParamsError, OSError) as err:
        _fail(err)
    typer.echo(f"updated {params}: {' '.join(assignments)}")


@app.command("serve-dir")
def serve_dir(
    directory: Path,
    port: int = typer.Option(8765, min=0, max=65535, help="port on 127.0.0.1 (0: any free port)"),
) -> None:
    """Serve a local directory (e.g. the offline mirror) over HTTP on 127.0.0.1 until interrupted."""
    from elmo.httpserve import serve_directory

    if not directory.is_dir():
        _fail(FileNotFoundError(f"{directory}: not a directory"))
    try:
        server = serve_directory(directory, port=port)
        url = server.__enter__()
    except OSError as err:
        _fail(OSError(f"serve-dir --port {port}: cannot listen on 127.0.0.1:{port} ({err.strerror or err}); "
                      "is another server using it? choose another --port"))
    stop = threading.Event()
    try:
        with signals_as_interrupt():  # Ctrl-C and SIGTERM both stop it, closing the socket
            typer.echo(f"serving {directory} at {url}", err=True)
            while not stop.wait(0.2):  # with a timeout: a wait without one never sees Ctrl-C
                pass
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)
    finally:
        server.__exit__(None, None, None)


for _typer in (app, params_app):  # --help without the docstrings' backticks
    for _info in _typer.registered_commands:
        _info.help = plain_help(_info.help or (_info.callback.__doc__ if _info.callback else None))


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
