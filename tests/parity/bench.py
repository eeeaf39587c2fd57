#!/usr/bin/env python3
"""CPU speed of liblora and of transformers + PEFT side by side, on one checkpoint and one set
of shapes (make parity-bench; the figures are in docs/benchmarks.md).

Each measurement runs in a fresh process, so its peak resident memory (ru_maxrss) is its own:
  train   LoRA r 16, alpha 32, all seven projections; AdamW lr 1e-4; batch x seq random
          tokens, labels = inputs; one untimed warm-up step, then --steps timed steps.
  decode  batch 1 greedy decoding of --new tokens after a 16-token prompt, the same adapter
          attached unmerged; one untimed warm-up generation, then one timed.
Both sides use --threads threads (default 2: torch.set_num_threads, liblora's "threads") and
float32.

Usage, from the repository root:
    build/parity-venv/bin/python tests/parity/bench.py [--steps 5] [--seq 256] [--batch 4]
        [--new 64] [--threads 2] [--config tests/bench/qwen2-27m.json | --model DIR]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RANK = 16
PROMPT = 16


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def tokens(vocab, shape, seed):
    import numpy as np
    return np.random.default_rng(seed).integers(0, vocab, size=shape, dtype=np.int32)


def work_liblora(args, mode):
    sys.path.insert(0, HERE)
    from common import liblora
    m = liblora.Model(args.model, threads=args.threads)
    a = liblora.Adapter.create(m, seed=1, r=RANK, lora_alpha=2 * RANK,
                               target_modules="all-linear", init_lora_weights=False)
    s = m.session(adapters=[a])
    if mode == "train":
        opt = liblora.Optimizer(s, lr=1e-4)
        x = tokens(m.vocab_size, (args.batch, args.seq), 1)
        opt.step(x, x)
        t = time.perf_counter()
        for _ in range(args.steps):
            opt.step(x, x)
        return args.steps * x.size / (time.perf_counter() - t)
    prompt = tokens(m.vocab_size, (PROMPT,), 2).tolist()
    s.generate(prompt, max_new_tokens=args.new, do_sample=False)
    s.reset()
    t = time.perf_counter()
    out = s.generate(prompt, max_new_tokens=args.new, do_sample=False)
    return len(out) / (time.perf_counter() - t)


def work_peft(args, mode):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, GenerationConfig
    import transformers.utils.logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    base = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    pm = get_peft_model(base, LoraConfig(r=RANK, lora_alpha=2 * RANK, lora_dropout=0.0,
                                         init_lora_weights=False, task_type="CAUSAL_LM",
                                         target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                         "gate_proj", "up_proj", "down_proj"]))
    vocab = base.config.vocab_size
    if mode == "train":
        pm.train()
        opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-4)
        x = torch.from_numpy(tokens(vocab, (args.batch, args.seq), 1)).long()

        def step():
            pm(input_ids=x, labels=x).loss.backward()
            opt.step()
            opt.zero_grad()
        step()
        t = time.perf_counter()
        for _ in range(args.steps):
            step()
        return args.steps * x.numel() / (time.perf_counter() - t)
    pm.eval()
    prompt = torch.from_numpy(tokens(vocab, (1, PROMPT), 2)).long()
    gc = GenerationConfig(do_sample=False, max_new_tokens=args.new, eos_token_id=None,
                          pad_token_id=0)
    with torch.no_grad():
        kw = dict(input_ids=prompt, attention_mask=torch.ones_like(prompt), generation_config=gc)
        pm.generate(**kw)
        t = time.perf_counter()
        out = pm.generate(**kw)
        return (out.shape[1] - PROMPT) / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=os.path.join(HERE, os.pardir, "bench", "qwen2-27m.json"))
    ap.add_argument("--model", help="an existing checkpoint folder instead of --config's random "
                    "one (for example make real-model's build/real-model/smollm2-135m-instruct)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", nargs=3, metavar=("SIDE", "MODE", "MODEL"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        side, mode, args.model = args.worker
        rate = (work_liblora if side == "liblora" else work_peft)(args, mode)
        print(json.dumps({"tokens_per_s": rate, "peak_rss_mib": peak_rss_mib()}))
        return 0
    sys.path.insert(0, HERE)
    from common import liblora
    with tempfile.TemporaryDirectory(prefix="parity-bench-") as tmp:
        model = args.model
        if not model:
            model = os.path.join(tmp, "model")
            liblora.Model.init_checkpoint(args.config, model, seed=1)
        opts = ["--steps", str(args.steps), "--seq", str(args.seq), "--batch", str(args.batch),
                "--new", str(args.new), "--threads", str(args.threads)]
        print("checkpoint %s; train: batch %d x seq %d, %d timed steps; decode: %d new tokens "
              "after %d; LoRA r %d on all seven projections; %d threads"
              % (os.path.relpath(args.model or args.config), args.batch, args.seq, args.steps, args.new,
                 PROMPT, RANK, args.threads))
        print("%-22s %-7s %12s %14s" % ("implementation", "mode", "tokens/s", "peak RSS MiB"))
        for mode in ("train", "decode"):
            for side in ("liblora", "peft"):
                out = subprocess.run([sys.executable, __file__, *opts, "--worker", side, mode,
                                      model], check=True, capture_output=True, text=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                name = "liblora" if side == "liblora" else "transformers + PEFT"
                print("%-22s %-7s %12.1f %14.0f" % (name, mode, r["tokens_per_s"],
                                                    r["peak_rss_mib"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
