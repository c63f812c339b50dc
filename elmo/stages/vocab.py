"""Stage vocab: word + character vocabularies (train split only) and the training arrays.

Reads the tokenize stage's ``{train,valid,test}.parquet`` and ``tokenizer.json`` from
``vocab.in_dir``; writes (each atomically):

* ``vocab.out_dir`` — ``words.txt``, ``chars.txt``, ``vocab.json`` (config + content sha256),
* ``vocab.arrays_dir`` — the memory-mapped arrays the pretrain stage trains on (elmo.data.arrays),
* ``vocab.metrics`` — vocabulary sizes, train types/tokens, per-split coverage and OOV rate,
  truncated tokens and unknown characters.
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from elmo.contracts import SPLITS, TEXT_PIPELINE_FILE, TOKENIZER_FILE
from elmo.data.arrays import build_arrays
from elmo.errors import StageError
from elmo.io import atomic_write_json
from elmo.stages import stage_report
from elmo.text import corpus
from elmo.text.pipeline import TextPipeline
from elmo.text.tokenizer import Tokenizer
from elmo.vocab.build import build_vocabulary, coverage


def run(params, root: Path) -> dict:
    p = params.vocab
    root = Path(root)
    in_dir = root / p.in_dir
    tok_path = in_dir / TOKENIZER_FILE
    if not tok_path.is_file():
        raise FileNotFoundError(f"{tok_path}: no such file (written by the tokenize stage: run `elmo tokenize`)")
    try:
        tokenizer = json.loads(tok_path.read_text(encoding="utf-8"))["tokenizer"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise StageError(f"{tok_path}: not a tokenizer description ({type(err).__name__}: {err})") from None
    pipeline = TextPipeline.load(in_dir)
    if pipeline.tokenizer.config() != Tokenizer.from_config(tokenizer).config():
        raise StageError(f"{in_dir / TEXT_PIPELINE_FILE}: its tokenizer {pipeline.tokenizer.config()} differs from "
                         f"{tok_path}'s {tokenizer} (rerun `elmo tokenize`)")
    with tqdm(total=3, desc="vocab", unit="step", bar_format="{desc}: {n}/{total}{postfix} [{elapsed}]") as bar:
        bar.set_postfix_str("reading and checking the tokenized splits")
        tables = {s: corpus.read_sentences(in_dir / f"{s}.parquet", required=(s == "train")) for s in SPLITS}
        bar.update()
        bar.set_postfix_str(f"counting {tables['train'].height:,} train sentences")
        vocab, counts = build_vocabulary(
            tables["train"], min_count=p.min_count, max_size=p.max_size, char_unit=p.char_unit,
            char_min_count=p.char_min_count, max_chars_per_token=p.max_chars_per_token, tokenizer=tokenizer,
        )
        vocab.save(root / p.out_dir, extra_json={TEXT_PIPELINE_FILE: pipeline.config()})
        bar.update()
        bar.set_postfix_str(f"training arrays ({vocab.size:,} words, {vocab.char_size:,} {p.char_unit} ids)")
        stats = build_arrays(vocab, tables, root / p.arrays_dir, known_types={"train": counts["token"]})
        bar.update()
    metrics = {
        "sha256": vocab.sha256,
        "words": {"size": vocab.size, "min_count": p.min_count, "max_size": p.max_size,
                  "train_types": counts.height, "train_tokens": int(counts["count"].sum()),
                  "train_types_kept": vocab.size - 4},
        "chars": {"unit": p.char_unit, "size": vocab.char_size, "min_count": p.char_min_count,
                  "max_chars_per_token": p.max_chars_per_token},
        "splits": {s: coverage(st) for s, st in stats.items()},
    }
    atomic_write_json(root / p.metrics, metrics)
    return stage_report("vocab", params, metrics)
