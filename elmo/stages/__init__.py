"""One module per pipeline stage, each exposing ``run(params: Params, root: Path) -> dict``.

``root`` is the workspace (the repository root); every path in params is relative to it.
The returned report is JSON-serialisable and is what the CLI prints and Prefect records.
"""

STAGES = ("crawl", "clean", "tokenize", "vocab", "pretrain", "fetch_task", "finetune", "register")
