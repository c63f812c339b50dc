"""The text pipeline: the one way any text becomes the tokens a model sees.

    TextPipeline = normaliser settings (elmo.text.normalize) + tokenizer settings (elmo.text.tokenizer)

It is fixed when the corpus is made — the clean stage normalises the petitions with the ``clean``
params' normaliser, the tokenize stage analyses them and writes ``text_pipeline.json`` next to the
sentences — and it travels with every model: vocab copies the file into the vocabulary (so every
biLM's ``vocab/`` holds it) and finetune writes it into every classifier directory. Whatever reads
text afterwards goes through the saved pipeline: finetune's readers (``elmo.task.data.read_records``),
``Classifier`` (and so the registry's pyfunc), ``Elmo.embed`` / ``Elmo.tokenize``. A headline with
``&quot;``, a zero-width space or decomposed (NFD) jamo therefore reaches the biLM in the form it
had in pretraining.

``text_pipeline.json``::

    {"format": "elmo-ko/text-pipeline", "format_version": 1,
     "normalizer": {"moderator_notices": [...], "mask_pattern": "...", "mask_placeholder": "***"},
     "tokenizer": {"tagger": "mecab", "pos_tags": false, "max_sentence_tokens": 100}}

Directories written before the pipeline was saved (a vocabulary or classifier with only the
tokenizer settings) load with the default normaliser (the ``clean`` defaults) and a warning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from elmo.contracts import TEXT_PIPELINE_FILE
from elmo.errors import StageError
from elmo.io import atomic_write_json
from elmo.log import get_logger
from elmo.params.clean import CleanParams
from elmo.text.normalize import COUNT_KEYS, Normalizer
from elmo.text.tokenizer import Tokenizer

FORMAT = "elmo-ko/text-pipeline"
FORMAT_VERSION = 1

log = get_logger("text")


def default_normalizer_config() -> dict[str, Any]:
    """The normaliser of the ``clean`` defaults (what an old directory without the pipeline gets)."""
    return Normalizer.from_params(CleanParams()).config()


class TextPipeline:
    """Normalise, then tokenize: ``pipeline.tokenize(["헤드라인", ...])`` -> token lists."""

    def __init__(self, normalizer: dict[str, Any] | None = None, tokenizer: dict[str, Any] | None = None) -> None:
        self._normalizer = Normalizer.from_config(normalizer if normalizer is not None
                                                  else default_normalizer_config())
        self.tokenizer = Tokenizer.from_config(tokenizer) if tokenizer is not None else Tokenizer()

    # --- settings -------------------------------------------------------------------------------
    @classmethod
    def from_params(cls, clean, tokenize) -> TextPipeline:
        """From the ``clean`` and ``tokenize`` params sections (what the corpus is made with)."""
        return cls(Normalizer.from_params(clean).config(), Tokenizer.from_params(tokenize).config())

    def config(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "normalizer": self._normalizer.config(),
                "tokenizer": self.tokenizer.config()}

    @classmethod
    def from_config(cls, doc: Any, where: str = "text pipeline") -> TextPipeline:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
            got = (doc.get("format"), doc.get("format_version")) if isinstance(doc, dict) else type(doc).__name__
            raise StageError(f"{where}: not a text pipeline (expected format {FORMAT!r} version {FORMAT_VERSION}, "
                             f"got {got})")
        try:
            return cls(doc["normalizer"], doc["tokenizer"])
        except (KeyError, TypeError, ValueError, StageError) as err:
            raise StageError(f"{where}: invalid text pipeline ({err})") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextPipeline) and self.config() == other.config()

    def __repr__(self) -> str:
        return f"TextPipeline(normalizer={self._normalizer.config()!r}, tokenizer={self.tokenizer!r})"

    # --- files ----------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``directory/text_pipeline.json`` (atomically)."""
        path = Path(directory) / TEXT_PIPELINE_FILE
        atomic_write_json(path, self.config())
        return path

    @classmethod
    def load(cls, directory: str | Path, legacy_tokenizer: dict[str, Any] | None = None) -> TextPipeline:
        """The pipeline saved in ``directory``. A directory from before the pipeline was saved loads
        with the default normaliser and ``legacy_tokenizer`` (its saved tokenizer settings), with a
        warning; without either it is an error naming the file."""
        path = Path(directory) / TEXT_PIPELINE_FILE
        if path.is_file():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise StageError(f"{path}: not valid JSON: {err}") from None
            return cls.from_config(doc, str(path))
        if legacy_tokenizer is None:
            raise FileNotFoundError(f"{path}: no such file (the text pipeline is saved by `elmo tokenize`, "
                                    "`elmo vocab` and `elmo finetune`)")
        log.warning(f"{path}: no saved text pipeline (a directory from an older version): using the default "
                    "normaliser (the clean defaults) with its saved tokenizer settings")
        return cls(None, legacy_tokenizer)

    # --- text -----------------------------------------------------------------------------------
    def normalize_counted(self, texts: list[str]) -> tuple[list[str], dict[str, int]]:
        """Normalised texts and what normalisation changed (``elmo.text.normalize.COUNT_KEYS``)."""
        norm = Normalizer.from_config(self._normalizer.config())  # fresh counts, safe across threads
        out = norm.texts(list(texts))
        return out, {k: int(norm.counts.get(k, 0)) for k in COUNT_KEYS}

    def normalize(self, texts: list[str]) -> list[str]:
        return self.normalize_counted(texts)[0]

    def tokenize(self, texts: list[str]) -> list[list[str]]:
        """Token lists of texts (one sentence each, never cut): normalised, then analysed."""
        return [self.tokenizer.tokenize(t) for t in self.normalize(texts)]
