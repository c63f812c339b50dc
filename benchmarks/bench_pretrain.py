"""biLM training throughput: tokens/s of the pretrain presets with each softmax, FLOPs per token and
achieved FLOP/s, against a naive reference timed side by side on the same batches.

    python benchmarks/bench_pretrain.py [--presets tiny small] [--softmax full sampled adaptive]
                                        [--steps 6] [--threads 1] [--batch-tokens 4096]
                                        [--vocab-dir data/processed/vocab --arrays-dir data/processed/arrays]
                                        [--device cuda --bf16 --presets full]   # on a GPU

A step is what training does: forward, loss, backward, gradient clipping, Adam. Tokens are real
positions (words + <bos>/<eos>), not padding. With the vocab stage's outputs present it times real
batches of the train split (bucketed by ``--batch-tokens``), otherwise synthetic Zipf sentences of
the same shape (vocabulary 35k words, 1.2k chars, C=20, ~30 tokens a sentence).

The reference is the textbook biLM: the same char CNN encoding every token (no de-duplication),
forward and backward stacks of ``nn.LSTMCell`` stepped in a Python loop, hidden size P (no
projection), and a full softmax — and the same with our adaptive softmax, to tell the softmax's
share from the LSTMs'. "CPU s" is process time (all threads), so the figures stay
comparable on a machine shared with other jobs, where wall-clock rates mostly measure the others.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # helpers.synthetic: the tests' synthetic batches

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from elmo.model import BiLM, BiLMConfig  # noqa: E402
from elmo.model.char_cnn import CharCNN  # noqa: E402
from elmo.params import load_params  # noqa: E402
from flops import flops_per_token  # noqa: E402  (benchmarks/flops.py)


# ---------------------------------------------------------------------------- the naive reference
class NaiveBiLM(nn.Module):
    """LSTMCell loops (hidden P, no projection) per direction and layer, no dedup; a full softmax
    (the textbook choice) or, to separate the two effects, our adaptive one."""

    def __init__(self, config: BiLMConfig) -> None:
        super().__init__()
        P = config.projection_dim
        self.config = config
        self.cnn = CharCNN(config)
        self.fwd = nn.ModuleList(nn.LSTMCell(P, P) for _ in range(config.n_layers))
        self.bwd = nn.ModuleList(nn.LSTMCell(P, P) for _ in range(config.n_layers))
        if config.softmax == "full":
            self.out = nn.Linear(P, config.vocab_size)
        else:
            from elmo.model.softmax import make_softmax

            self.softmax = make_softmax(config)

    def _run(self, cells: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:  # x (B, T, P)
        for cell in cells:
            h = x.new_zeros(x.shape[0], x.shape[2])
            c = torch.zeros_like(h)
            outs = []
            for t in range(x.shape[1]):
                h, c = cell(x[:, t], (h, c))
                outs.append(h)
            x = torch.stack(outs, 1)
        return x

    def loss(self, batch) -> torch.Tensor:
        B, T, C = batch.chars.shape
        x = self.cnn.encode(batch.chars.reshape(B * T, C)).reshape(B, T, -1)  # every position, pads too
        f = self._run(self.fwd, x)
        lengths = batch.mask.sum(1)
        from elmo.model.bilm import reverse_padded

        b = reverse_padded(self._run(self.bwd, reverse_padded(x, lengths)), lengths)
        if self.config.softmax == "full":
            ce = nn.functional.cross_entropy
            lf = ce(self.out(f).reshape(B * T, -1), batch.fwd_targets.reshape(-1), ignore_index=0)
            lb = ce(self.out(b).reshape(B * T, -1), batch.bwd_targets.reshape(-1), ignore_index=0)
            return 0.5 * (lf + lb)
        fp, bp = batch.fwd_targets != 0, batch.bwd_targets != 0
        return 0.5 * (self.softmax.train_nll(f[fp], batch.fwd_targets[fp]).mean()
                      + self.softmax.train_nll(b[bp], batch.bwd_targets[bp]).mean())

    def flops_per_token(self, padded_ratio: float) -> float:
        """Training FLOPs per real token (x3 forward), counting the work done on pads too."""
        c = self.config
        P, V, F = c.projection_dim, c.vocab_size, c.n_filters
        cnn = sum(n * w * c.char_embed_dim * (c.max_chars - w + 1) for w, n in c.filters)
        token = cnn + c.highway_layers * F * 2 * F + F * P
        lstm = 2 * c.n_layers * 4 * P * (P + P)
        if c.softmax == "full":
            return 2 * 3 * (token + lstm + 2 * V * P) * padded_ratio
        ours = flops_per_token(c)
        return 2 * 3 * (token + lstm) * padded_ratio + ours["softmax"]


# ---------------------------------------------------------------------------- data
def real_batches(vocab_dir: Path, arrays_dir: Path, batch_tokens: int, n: int):
    from elmo.data.loader import SentenceDataset
    from elmo.train.datamodule import BucketPlan, collate_indices
    from elmo.vocab import Vocabulary

    vocab = Vocabulary.load(vocab_dir)
    ds = SentenceDataset(arrays_dir, "train", vocab)
    plan = BucketPlan(ds.lengths, batch_tokens=batch_tokens, seed=1)(0)
    collate = collate_indices(ds)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(plan), size=n, replace=False)
    sizes = {"vocab_size": vocab.size, "n_chars": vocab.char_size, "max_chars": vocab.max_chars_per_token}
    return [collate(plan[i].tolist()) for i in picks], sizes, f"real train batches ({arrays_dir})"


def synthetic_batches(batch_tokens: int, n: int):
    from helpers.synthetic import make_batch, random_corpus, spellings

    V, NC, C = 35_000, 1_200, 20
    table = spellings(V, NC, C, seed=0)
    per = max(1, batch_tokens // 32)
    corpus = random_corpus(per * n, V, min_len=20, max_len=40, seed=0)
    batches = [make_batch(corpus[i * per:(i + 1) * per], table) for i in range(n)]
    return batches, {"vocab_size": V, "n_chars": NC, "max_chars": C}, "synthetic Zipf batches"


# ---------------------------------------------------------------------------- timing
def time_steps(step, batches, device) -> tuple[float, float, int]:
    step(batches[0].to(device))  # warm-up, not timed
    if device.type == "cuda":
        torch.cuda.synchronize()
    tokens, w0, c0 = 0, time.perf_counter(), time.process_time()
    for b in batches[1:]:
        step(b.to(device))
        tokens += int(b.mask.sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - w0, time.process_time() - c0, tokens


def bench_model(model: nn.Module, loss_fn, batches, device, bf16: bool):
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)

    def step(b):
        with autocast:
            loss = loss_fn(b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    return time_steps(step, batches, device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"])
    ap.add_argument("--softmax", nargs="+", default=["full", "sampled", "adaptive"])
    ap.add_argument("--steps", type=int, default=6, help="timed steps per row (after one warm-up step)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--vocab-dir", type=Path, default=REPO / "data/processed/vocab")
    ap.add_argument("--arrays-dir", type=Path, default=REPO / "data/processed/arrays")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    n = args.steps + 1
    if (args.vocab_dir / "vocab.json").is_file() and (args.arrays_dir / "arrays.json").is_file():
        batches, sizes, source = real_batches(args.vocab_dir, args.arrays_dir, args.batch_tokens, n)
    else:
        batches, sizes, source = synthetic_batches(args.batch_tokens, n)
    real = sum(int(b.mask.sum()) for b in batches)
    unique = sum(torch.unique(b.chars[b.mask], dim=0).shape[0] for b in batches) / real
    padded = sum(b.mask.numel() for b in batches) / real
    print(f"# {source}: {real / n:,.0f} tokens a batch, {unique:.2f} distinct spellings per token, "
          f"{padded:.3f} padded/real; device {device}, {args.threads} thread(s), torch {torch.__version__}")
    presets = load_params(REPO / "params.yaml").pretrain.presets

    rows = []
    header = (f"{'model':<34} {'softmax':<9} {'tokens/s':>9} {'tok/CPU-s':>9} {'ms/step':>8} "
              f"{'MFLOP/tok':>9} {'GFLOP/s':>8}")
    print(header)
    for name in args.presets:
        for kind in args.softmax:
            cfg = BiLMConfig(**sizes, char_pad_id=0, **{**presets[name].model.model_dump(), "softmax": kind})
            torch.manual_seed(0)
            model = BiLM(cfg)

            def loss(b, model=model):
                return model.loss(model(b.chars, b.mask), b.fwd_targets, b.bwd_targets).loss

            wall, cpu, tokens = bench_model(model, loss, batches, device, args.bf16)
            fl = flops_per_token(cfg, unique_ratio=unique)["total"]
            row = {"model": f"{name} (P={cfg.projection_dim}, H={cfg.lstm_dim})", "softmax": kind,
                   "tokens_per_s": tokens / wall, "tokens_per_cpu_s": tokens / cpu,
                   "ms_per_step": 1000 * wall / args.steps, "mflop_per_token": fl / 1e6,
                   "gflop_per_s": fl * tokens / wall / 1e9, "parameters": model.num_parameters()}
            rows.append(row)
            print(f"{row['model']:<34} {kind:<9} {row['tokens_per_s']:>9,.0f} {row['tokens_per_cpu_s']:>9,.0f} "
                  f"{row['ms_per_step']:>8,.0f} {row['mflop_per_token']:>9.2f} {row['gflop_per_s']:>8.2f}", flush=True)
            del model
        if not args.no_reference:
            for kind in ("full", "adaptive"):
                if kind not in args.softmax:
                    continue
                cfg = BiLMConfig(**sizes, char_pad_id=0, **{**presets[name].model.model_dump(), "softmax": kind})
                torch.manual_seed(0)
                ref = NaiveBiLM(cfg)
                wall, cpu, tokens = bench_model(ref, ref.loss, batches, device, args.bf16)
                fl = ref.flops_per_token(padded)
                row = {"model": f"reference for {name} (LSTMCell P={cfg.projection_dim})", "softmax": kind,
                       "tokens_per_s": tokens / wall, "tokens_per_cpu_s": tokens / cpu,
                       "ms_per_step": 1000 * wall / args.steps, "mflop_per_token": fl / 1e6,
                       "gflop_per_s": fl * tokens / wall / 1e9, "parameters": sum(p.numel() for p in ref.parameters())}
                rows.append(row)
                print(f"{row['model']:<34} {kind:<9} {row['tokens_per_s']:>9,.0f} {row['tokens_per_cpu_s']:>9,.0f} "
                      f"{row['ms_per_step']:>8,.0f} {row['mflop_per_token']:>9.2f} {row['gflop_per_s']:>8.2f}",
                      flush=True)
    if args.json:
        args.json.write_text(json.dumps({"source": source, "device": str(device), "threads": args.threads,
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
