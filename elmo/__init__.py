"""elmo-ko: a Korean ELMo pipeline (crawl → clean → tokenize → vocab → pretrain → finetune → register).

The library knows nothing of DVC, Prefect or MLflow except in the thin modules that adapt to them.
Every stage is a plain function ``run(params, root) -> report`` in ``elmo.stages`` that the CLI,
DVC and Prefect all call.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``elmo.Elmo`` without importing torch on ``import elmo`` (PEP 562 lazy attribute)."""
    if name == "Elmo":
        from elmo.embed.elmo import Elmo

        return Elmo
    raise AttributeError(f"module 'elmo' has no attribute {name!r}")
