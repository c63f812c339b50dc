"""LM fine-tuning of the biLM on the task's own text (ULMFiT §3.2: "target task LM fine-tuning").

    adapted = adapt_bilm(bilm_dir, token_lists, out_dir, AdaptOptions(...))

The biLM keeps training as a language model, both directions, on the task's train texts (and, if
asked, the unlabeled dev texts: never a label), for ``max_steps`` steps (or, opt-in, until
``max_minutes`` of wall clock: ``ended_by: clock``), with a slanted triangular schedule. Words
outside the biLM's vocabulary keep their characters on the input side (the char-CNN reads them)
and are ``<unk>`` targets, as in pretraining. Its output is a biLM directory like ``models/bilm``; ``meta.adapt`` in its
config.json records the key it was made for (sha256 of the source biLM's files, the texts and the
options), so a rerun with the same biLM, texts and options reuses it instead of training again.
Only what the model is goes there: its timings (``seconds``, ``tokens_per_s``) are in this run's
:attr:`AdaptResult.info` (the finetune metrics), not in the directory, so the same training gives
the same bytes on any machine.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from elmo.contracts import TEXT_PIPELINE_FILE
from elmo.data.batch import encode_batch
from elmo.data.sampler import length_batches
from elmo.embed.cache import model_fingerprint, tokens_fingerprint
from elmo.errors import StageError
from elmo.model import BiLM, vocab_dir
from elmo.model.files import read_config
from elmo.model.perplexity import exact_losses, perplexity as lm_perplexity
from elmo.task.loop import TrainLoop
from elmo.train.schedule import slanted_triangular
from elmo.vocab import Vocabulary

FORMAT = "elmo-ko/adapted-bilm-v2"  # v2: meta.adapt has ended_by, no timings


@dataclass(frozen=True)
class AdaptOptions:
    max_steps: int = 400
    max_minutes: float | None = None  # opt-in wall clock (None/0: ends by max_steps only)
    batch_tokens: int = 2048  # padded positions per step
    lr: float = 1e-3  # peak of the slanted triangular schedule
    cut_frac: float = 0.1
    ratio: float = 32.0
    grad_clip: float = 5.0
    heldout_sentences: int = 500  # perplexity before/after on this many texts not trained on
    # Characters of the task's texts that the biLM's character vocabulary lacks (e.g. Hanja such as
    # 北 美 中 in news headlines, rare in petitions) and that occur at least this often are added as new
    # character ids, their embeddings starting at <unk>'s, and learnt while adapting. 0 = keep the vocabulary.
    extend_chars_min_count: int = 2
    seed: int = 0


@dataclass
class AdaptResult:
    path: Path
    reused: bool
    key: str
    info: dict


def adapt_key(bilm_dir: Path, token_lists: list[list[str]], opts: AdaptOptions) -> str:
    h = hashlib.sha256()
    for part in (FORMAT, model_fingerprint(bilm_dir), tokens_fingerprint(token_lists),
                 json.dumps(asdict(opts), sort_keys=True)):
        h.update(part.encode() + b"\n")
    return h.hexdigest()[:24]


def extend_chars(vocab, token_lists: list[list[str]], min_count: int):
    """``vocab`` with the task's missing characters (seen >= ``min_count`` times) appended; and those characters."""

    return vocab.with_more_chars(Counter(t for toks in token_lists for t in toks), min_count)


def _batches(lengths: np.ndarray, batch_tokens: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar length, each at most ``batch_tokens`` padded positions (<bos>/<eos> counted):
    pools of 4096 sentences sorted by length, the budget cut along them (elmo.data.sampler.length_batches)."""
    return length_batches(lengths, max_tokens=batch_tokens, rng=rng, pool=4096, cut_at_pools=False)


def perplexity(bilm, vocab, token_lists: list[list[str]], batch_tokens: int = 4096) -> float:
    """Exact perplexity of both directions (mean NLL over all targets) on ``token_lists``: the
    evaluation loop and formula of elmo/model/perplexity.py; each batch's two NLLs are added before the
    sum over batches (as the adapted biLMs already saved record it)."""
    nll, n = 0.0, 0
    lengths = np.array([len(t) for t in token_lists])
    batches = (encode_batch(vocab, [token_lists[i] for i in idx])
               for idx in _batches(lengths, batch_tokens, np.random.default_rng(0)))
    for loss in exact_losses(bilm, batches, progress=False):
        nll += float(loss.nll_fwd + loss.nll_bwd)
        n += loss.n_fwd + loss.n_bwd
    return lm_perplexity(nll, n)


def adapt_bilm(bilm_dir: str | Path, token_lists: list[list[str]], out_dir: str | Path, opts: AdaptOptions,
               log: Callable[[str], None] = print) -> AdaptResult:
    """The biLM of ``bilm_dir`` adapted on ``token_lists``, saved to ``out_dir`` (reused when its key matches)."""

    bilm_dir, out_dir = Path(bilm_dir), Path(out_dir)
    token_lists = [t for t in token_lists if t]
    if not token_lists:
        raise StageError("finetune.adapt: adapting the biLM needs at least one non-empty task text")
    key = adapt_key(bilm_dir, token_lists, opts)
    if (out_dir / "config.json").is_file():
        meta = read_config(out_dir).get("meta", {}).get("adapt", {})
        if meta.get("key") == key:
            log(f"adapted biLM: reusing {out_dir} (same biLM, texts and options)")
            return AdaptResult(out_dir, True, key, meta)
    vdir = vocab_dir(bilm_dir)
    if vdir is None:
        raise FileNotFoundError(f"{bilm_dir}: the biLM was saved without its vocabulary (vocab/)")
    vocab, added = extend_chars(Vocabulary.load(vdir), token_lists, opts.extend_chars_min_count)
    bilm = BiLM.load(bilm_dir)
    if added:
        bilm = bilm.with_chars(vocab.char_size)
        log(f"adapt: {len(added)} characters of the task's texts added to the character vocabulary "
            f"(most frequent: {' '.join(added[:20])})")
    rng = np.random.default_rng(opts.seed)
    order = rng.permutation(len(token_lists))
    n_held = min(opts.heldout_sentences, len(token_lists) // 10)
    held = [token_lists[i] for i in order[:n_held]]
    train = [token_lists[i] for i in order[n_held:]]
    ppl_before = perplexity(bilm, vocab, held) if held else float("nan")
    torch.manual_seed(opts.seed)
    bilm.train()
    opt = torch.optim.Adam([p for p in bilm.parameters() if p.requires_grad], lr=opts.lr)
    loop = TrainLoop(opt, grad_clip=opts.grad_clip, max_steps=opts.max_steps,
                     max_seconds=opts.max_minutes * 60 if opts.max_minutes else None, log=log, name="adapt",
                     lr_factor=lambda step: slanted_triangular(step, opts.max_steps, opts.cut_frac, opts.ratio))
    lengths = np.array([len(t) for t in train])

    def lm_loss(idx: np.ndarray):
        b = encode_batch(vocab, [train[i] for i in idx])
        loss = bilm.loss(bilm(b.chars, b.mask), b.fwd_targets, b.bwd_targets)
        return loss.loss, loss.n_fwd

    tokens = 0
    with loop.progress("adapt biLM", opts.max_steps):
        for _ in loop.epochs():
            for idx in loop.take(_batches(lengths, opts.batch_tokens, rng)):
                tokens += loop.step(lambda: lm_loss(idx))[1]
    step, seconds = loop.steps, loop.clock.elapsed()
    ppl_after = perplexity(bilm, vocab, held) if held else float("nan")
    info = {"key": key, "format": FORMAT, "source_fingerprint": model_fingerprint(bilm_dir),
            "source": read_config(bilm_dir).get("meta", {}), "texts": len(token_lists), "heldout_texts": n_held,
            "steps": step, "ended_by": loop.ended_by, "tokens": tokens,
            "heldout_ppl_before": round(ppl_before, 4), "heldout_ppl_after": round(ppl_after, 4),
            "chars_added": added, "options": asdict(opts)}
    timing = {"seconds": round(seconds, 2), "tokens_per_s": round(tokens / max(seconds, 1e-9), 1)}
    log(f"adapted biLM: {step} steps, {tokens:,} tokens in {seconds:.0f}s ({timing['tokens_per_s']} tokens/s); "
        f"held-out task-text perplexity {ppl_before:.1f} -> {ppl_after:.1f}")
    bilm.eval()
    with tempfile.TemporaryDirectory() as tmp:
        vocab_out = vocab.save(Path(tmp) / "vocab", extra_json=_pipeline_files(vdir)) if added else vdir
        bilm.save(out_dir, vocab_dir=vocab_out, meta={"adapt": info})  # no timings: what the model is only
    return AdaptResult(out_dir, False, key, {**info, **timing})


def _pipeline_files(vdir: Path) -> dict:
    """The source vocabulary's text pipeline file, for the extended vocabulary (none for an old one)."""
    path = vdir / TEXT_PIPELINE_FILE
    return {TEXT_PIPELINE_FILE: json.loads(path.read_text(encoding="utf-8"))} if path.is_file() else {}


def random_bilm(bilm_dir: str | Path, cache_dir: str | Path, seed: int) -> Path:
    """The control: a biLM of ``bilm_dir``'s shape and vocabulary with untrained (seeded) weights, saved once."""

    bilm_dir = Path(bilm_dir)
    cfg = read_config(bilm_dir)["config"]
    key = hashlib.sha256(f"random-bilm\n{json.dumps(cfg.to_dict(), sort_keys=True)}\n{seed}\n"
                         f"{model_fingerprint(vocab_dir(bilm_dir))}".encode()).hexdigest()[:24]
    out = Path(cache_dir) / key
    if not (out / "config.json").is_file():
        torch.manual_seed(seed)
        BiLM(cfg).eval().save(out, vocab_dir=vocab_dir(bilm_dir), meta={"random_control": True, "seed": seed})
    return out
