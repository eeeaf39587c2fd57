#!/usr/bin/env python3
"""A LoRA fine-tune of a real pretrained model, run by liblora and by transformers + PEFT on the
same data from the same starting adapter (make real-model-compare; docs/real-model.md).

The model is SmolLM2-135M-Instruct (make real-model), the task the formal rewriting of
tools/real_model/formal_task.py. Both sides get the same batches: liblora's Dataset tokenizes
train.jsonl with the model's chat template (loss on the assistant's tokens), shuffles it and
cuts it into batches once; those ids and labels go to liblora's Optimizer and to PEFT. Both
start from one adapter (liblora's init: A random, B zero, saved in PEFT's format and loaded
into PEFT), train with AdamW, a cosine schedule with warmup, gradient clipping at 1 and no
dropout, in float32 on the CPU with the same number of threads. Each training runs in its own
process, so its peak resident memory is its own.

Held out: every test message is rewritten greedily by the base model, the liblora adapter, the
PEFT adapter in transformers, and the PEFT adapter loaded into liblora; a reply scores when it
equals the reference rewrite exactly. Writes OUT/results.json, OUT/loss.svg and the replies
(OUT/replies.jsonl); prints one table.

Usage, from the repository root, with the parity venv:
    build/parity-venv/bin/python tests/parity/real_model.py [--real DIR] [--out DIR]
        [--epochs 1] [--batch 8] [--lr 1e-3] [--threads 2]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, os.pardir, os.pardir))
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear")
MAX_NEW = 40


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def liblora_module():
    sys.path.insert(0, HERE)
    from common import liblora
    return liblora


def batches(args):
    """The training batches, as liblora's Dataset gives them: [(ids, labels)] of lists."""
    liblora = liblora_module()
    m = liblora.Model(args.model, threads=args.threads)
    ds = liblora.Dataset.load(m.tokenizer(), os.path.join(args.data, "train.jsonl"),
                              max_length=256, shuffle=True, seed=args.seed)
    out = []
    for _ in range(args.epochs):
        # one row at a time: unpadded, in the epoch's order; grouped into ragged batches
        rows = [ds.next_batch(1)[:2] for _ in range(len(ds))]
        for i in range(0, len(rows), args.batch):
            group = rows[i:i + args.batch]
            out.append(([r[0][0] for r in group], [r[1][0] for r in group]))
    return out


def schedule(args, n_steps):
    return dict(lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                warmup_steps=max(1, round(0.05 * n_steps)), num_training_steps=n_steps,
                max_grad_norm=1.0)


def train_liblora(args):
    liblora = liblora_module()
    data = json.load(open(os.path.join(args.out, "batches.json")))
    m = liblora.Model(args.model, threads=args.threads)
    a = liblora.Adapter.load(m, os.path.join(args.out, "init"))
    hp = schedule(args, len(data))
    opt = liblora.Optimizer(m.session(adapters=[a]), lr_scheduler_type="cosine", **hp)
    curve, tokens = [], 0
    t = time.perf_counter()
    for ids, labels in data:
        curve.append(opt.step(ids, labels))
        tokens += sum(len(r) for r in ids)
    seconds = time.perf_counter() - t
    a.save(os.path.join(args.out, "liblora-adapter"))
    return dict(curve=curve, seconds=seconds, tokens=tokens)


def train_peft(args):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, get_cosine_schedule_with_warmup
    torch.set_num_threads(args.threads)
    data = json.load(open(os.path.join(args.out, "batches.json")))
    base = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    pm = PeftModel.from_pretrained(base, os.path.join(args.out, "init"), is_trainable=True)
    pm.train()
    hp = schedule(args, len(data))
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=hp["lr"], betas=hp["betas"], eps=hp["eps"],
                            weight_decay=hp["weight_decay"])
    sched = get_cosine_schedule_with_warmup(opt, hp["warmup_steps"], hp["num_training_steps"])
    curve, tokens = [], 0
    t = time.perf_counter()
    for ids, labels in data:
        width = max(len(r) for r in ids)
        x = torch.tensor([r + [0] * (width - len(r)) for r in ids], dtype=torch.long)
        y = torch.tensor([r + [-100] * (width - len(r)) for r in labels], dtype=torch.long)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in ids])
        loss = pm(input_ids=x, attention_mask=mask, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, hp["max_grad_norm"])
        opt.step()
        sched.step()
        opt.zero_grad()
        curve.append(loss.item())
        tokens += sum(len(r) for r in ids)
    seconds = time.perf_counter() - t
    pm.save_pretrained(os.path.join(args.out, "peft-adapter"))
    return dict(curve=curve, seconds=seconds, tokens=tokens)


def questions(args):
    with open(os.path.join(args.data, "test_answers.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def prompt_ids(tok, question):
    text = tok.chat_render([{"role": "user", "content": question}], add_generation_prompt=True)
    return tok.encode(text)


def replies_liblora(args, adapter_dir):
    liblora = liblora_module()
    m = liblora.Model(args.model, threads=args.threads)
    tok = m.tokenizer()
    eos = tok.token_id("<|im_end|>")
    adapters = [liblora.Adapter.load(m, adapter_dir)] if adapter_dir else []
    s = m.session(adapters=adapters)
    out = []
    t = time.perf_counter()
    n_tokens = 0
    for q in questions(args):
        s.reset()
        ids = s.generate(prompt_ids(tok, q["question"]), max_new_tokens=MAX_NEW, do_sample=False,
                         eos_token_id=eos)
        n_tokens += len(ids)
        out.append(tok.decode(ids, skip_special=True).strip())
    return dict(replies=out, seconds=time.perf_counter() - t, tokens=n_tokens)


def replies_peft(args):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, GenerationConfig
    torch.set_num_threads(args.threads)
    liblora = liblora_module()
    tok = liblora.Tokenizer.load(args.model)
    eos = tok.token_id("<|im_end|>")
    base = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    pm = PeftModel.from_pretrained(base, os.path.join(args.out, "peft-adapter")).eval()
    gc = GenerationConfig(do_sample=False, max_new_tokens=MAX_NEW, eos_token_id=eos,
                          pad_token_id=eos)
    out = []
    t = time.perf_counter()
    n_tokens = 0
    with torch.no_grad():
        for q in questions(args):
            x = torch.tensor([prompt_ids(tok, q["question"])], dtype=torch.long)
            y = pm.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=gc)
            ids = y[0, x.shape[1]:].tolist()
            n_tokens += len(ids)
            out.append(tok.decode(ids, skip_special=True).strip())
    return dict(replies=out, seconds=time.perf_counter() - t, tokens=n_tokens)


def worker(args):
    phase = args.worker
    if phase == "train-liblora":
        r = train_liblora(args)
    elif phase == "train-peft":
        r = train_peft(args)
    elif phase == "reply-base":
        r = replies_liblora(args, None)
    elif phase == "reply-liblora":
        r = replies_liblora(args, os.path.join(args.out, "liblora-adapter"))
    elif phase == "reply-peft-in-liblora":
        r = replies_liblora(args, os.path.join(args.out, "peft-adapter"))
    else:
        r = replies_peft(args)
    r["peak_rss_mib"] = peak_rss_mib()
    with open(os.path.join(args.out, phase + ".json"), "w") as f:
        json.dump(r, f)


def run_phase(args, phase):
    cmd = [sys.executable, __file__, "--worker", phase, "--real", args.real, "--out", args.out,
           "--epochs", str(args.epochs), "--batch", str(args.batch), "--lr", str(args.lr),
           "--threads", str(args.threads), "--seed", str(args.seed)]
    t = time.time()
    subprocess.run(cmd, check=True)
    print("  %-22s %6.0f s" % (phase, time.time() - t), flush=True)
    with open(os.path.join(args.out, phase + ".json")) as f:
        return json.load(f)


def exact(replies, qs):
    return sum(r == q["answer"] for r, q in zip(replies, qs)) / len(qs)


def word_accuracy(replies, qs):
    """Mean over replies of 1 - word-level edit distance / max length."""
    total = 0.0
    for r, q in zip(replies, qs):
        a, b = r.split(), q["answer"].split()
        d = list(range(len(b) + 1))
        for i, wa in enumerate(a, 1):
            prev, d[0] = d[0], i
            for j, wb in enumerate(b, 1):
                prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (wa != wb))
        total += 1 - d[len(b)] / max(len(a), len(b), 1)
    return total / len(qs)


def svg(curves, path):
    """Both loss curves on one chart (no plotting library in the venv)."""
    w, h, pad = 640, 360, 48
    n = max(len(c) for c in curves.values())
    top = max(max(c) for c in curves.values())
    colors = {"liblora": "#1f77b4", "transformers + PEFT": "#d62728"}
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
             'font-family="sans-serif" font-size="12">' % (w, h),
             '<rect width="100%" height="100%" fill="white"/>',
             '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (pad, h - pad, w - 10,
                                                                          h - pad),
             '<line x1="%d" y1="10" x2="%d" y2="%d" stroke="black"/>' % (pad, pad, h - pad),
             '<text x="%d" y="%d">step (1..%d)</text>' % (w // 2 - 30, h - 12, n),
             '<text x="4" y="20">loss</text>',
             '<text x="4" y="%d">%.2f</text>' % (16 + 10, top),
             '<text x="4" y="%d">0</text>' % (h - pad)]
    for k, (name, c) in enumerate(curves.items()):
        pts = " ".join("%.1f,%.1f" % (pad + i * (w - pad - 10) / max(n - 1, 1),
                                      h - pad - v / top * (h - pad - 20)) for i, v in enumerate(c))
        parts.append('<polyline fill="none" stroke="%s" stroke-width="%d" points="%s"/>'
                     % (colors[name], 3 - k, pts))
        parts.append('<text x="%d" y="%d" fill="%s">%s</text>' % (w - 200, 24 + 16 * k,
                                                                  colors[name], name))
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", default=os.path.join(ROOT, "build", "real-model"))
    ap.add_argument("--out")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.model = os.path.join(args.real, "smollm2-135m-instruct")
    args.data = os.path.join(args.real, "formal")
    args.out = args.out or os.path.join(args.real, "compare")
    if args.worker:
        return worker(args)
    if not os.path.isdir(args.model):
        sys.exit("real_model.py: %s is missing: run make real-model first" % args.model)
    os.makedirs(args.out, exist_ok=True)
    liblora = liblora_module()
    import peft
    import torch
    import transformers
    data = batches(args)
    with open(os.path.join(args.out, "batches.json"), "w") as f:
        json.dump(data, f)
    m = liblora.Model(args.model, threads=args.threads)
    liblora.Adapter.create(m, seed=args.seed, **LORA).save(os.path.join(args.out, "init"))
    del m
    n_tok = sum(len(r) for ids, _ in data for r in ids)
    print("liblora %s; torch %s, transformers %s, peft %s; %d threads" % (
        liblora.version(), torch.__version__, transformers.__version__, peft.__version__,
        args.threads))
    print("model %s; %d updates of %d samples (%d tokens), lr %g cosine, LoRA r %d alpha %d "
          "on all linear layers" % (os.path.relpath(args.model, ROOT), len(data), args.batch,
                                    n_tok, args.lr, LORA["r"], LORA["lora_alpha"]), flush=True)
    res = {p: run_phase(args, p) for p in ("train-liblora", "train-peft", "reply-base",
                                            "reply-liblora", "reply-peft",
                                            "reply-peft-in-liblora")}
    qs = questions(args)
    ll, pf = res["train-liblora"], res["train-peft"]
    diff = max(abs(a - b) / b for a, b in zip(ll["curve"], pf["curve"]))
    svg({"liblora": ll["curve"], "transformers + PEFT": pf["curve"]},
        os.path.join(args.out, "loss.svg"))
    rows = [("base model", "reply-base"), ("liblora adapter", "reply-liblora"),
            ("PEFT adapter, transformers", "reply-peft"),
            ("PEFT adapter, liblora", "reply-peft-in-liblora")]
    with open(os.path.join(args.out, "replies.jsonl"), "w", encoding="utf-8") as f:
        for i, q in enumerate(qs):
            f.write(json.dumps(dict(q, **{k: res[p]["replies"][i] for k, p in rows}),
                               ensure_ascii=False) + "\n")
    summary = dict(
        updates=len(data), tokens=n_tok,
        loss_first=(ll["curve"][0], pf["curve"][0]), loss_last=(ll["curve"][-1], pf["curve"][-1]),
        loss_curve_max_rel_diff=diff,
        train_tokens_per_s=(ll["tokens"] / ll["seconds"], pf["tokens"] / pf["seconds"]),
        train_peak_rss_mib=(ll["peak_rss_mib"], pf["peak_rss_mib"]),
        held_out={k: dict(exact=exact(res[p]["replies"], qs),
                          word_accuracy=word_accuracy(res[p]["replies"], qs),
                          decode_tokens_per_s=res[p]["tokens"] / res[p]["seconds"])
                  for k, p in rows},
        curves=dict(liblora=ll["curve"], peft=pf["curve"]))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("\n%-34s %14s %20s" % ("training", "liblora", "transformers + PEFT"))
    print("%-34s %14.4f %20.4f" % ("loss, first update", *summary["loss_first"]))
    print("%-34s %14.4f %20.4f" % ("loss, last update", *summary["loss_last"]))
    print("%-34s %14.1f %20.1f" % ("tokens/s", *summary["train_tokens_per_s"]))
    print("%-34s %14.0f %20.0f" % ("peak RSS, MiB", *summary["train_peak_rss_mib"]))
    print("loss curves: largest relative difference over %d updates %.2e" % (len(data), diff))
    print("\n%-34s %10s %14s %12s" % ("held out (%d messages)" % len(qs), "exact", "word acc.",
                                       "decode tok/s"))
    for k, _ in rows:
        h = summary["held_out"][k]
        print("%-34s %9.1f%% %13.1f%% %12.1f" % (k, 100 * h["exact"], 100 * h["word_accuracy"],
                                                 h["decode_tokens_per_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
