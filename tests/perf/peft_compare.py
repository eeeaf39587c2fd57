#!/usr/bin/env python3
"""GPU speed and memory of liblora beside transformers + PEFT at Qwen2.5 shapes (issue 8).

For each model (--models 0.5b,1.5b: Qwen2.5-0.5B's and Qwen2.5-1.5B's published shapes, random
weights, which cost what trained weights cost) the checkpoint is built with transformers
(from_config, bf16, save_pretrained: safetensors), then every measurement runs in a child
process of this one, one at a time, on the same GPU:

  train   LoRA r 16, alpha 32, all seven projections, AdamW lr 1e-4 (each side's default
          implementation), random tokens, labels = inputs: --warmup untimed steps, then --steps
          timed steps of --batch x --seq tokens; then --mem-steps steps of --mem-tokens tokens
          (rows of --seq) for the peak memory.
  decode  batch 1 greedy decoding of --new tokens after a --prompt-token prompt (timed from the
          call to the last token, prefill included), with the adapter attached unmerged, then
          merged into the weights (liblora: Model.merge and a session without it; PEFT:
          merge_and_unload). One short untimed generation first.

liblora runs through bindings/python on --liblora-device (default "cuda"); transformers + PEFT
in bfloat16 with attn_implementation="sdpa" on --torch-device (default "cuda"; PEFT keeps the
adapter weights in float32, its default).

Peak memory: each worker samples NVML (libnvidia-ml.so.1 through ctypes) every 5 ms from a
thread: the process's used memory (nvmlDeviceGetComputeRunningProcesses), or, where NVML does
not list the process (a PID namespace), the device's used memory less its value before the
model loaded. That includes the CUDA context. Beside it, each side's own count of its
allocations, without the context: liblora.device_memory (lora_device_memory: what liblora's
cudaMalloc calls hold) and torch.cuda.max_memory_allocated (the allocator's peak, no cache
slack), each reset before the memory steps. On the CPU (--smoke) both report the process's
peak RSS instead.

MFU = train FLOPs per token (liblora.flops: lora_flops_json, model FLOPs) x tokens/s over
--peak-tflops (default 989: H100 SXM and H200 bf16 dense, nominal).

A refused liblora device (no GPU, no driver, a CPU-only build) is found first, by a child that
loads tests/fixtures/tiny-qwen2 there, and ends the run with status 2 before anything else;
every child has a --timeout; a failed child ends the run with status 1 after printing its
error. --smoke runs the whole path on the CPU on a tiny random config in a few seconds.

Usage, from the repository root (torch, transformers and peft importable; lib/ built):
    python tests/perf/peft_compare.py [--models 0.5b,1.5b] [--steps 10] [--warmup 2]
        [--json OUT.json] [--smoke]
"""

import argparse
import ctypes
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, os.pardir, os.pardir))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

RANK, ALPHA = 16, 32
ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PROBE_MODEL = os.path.join(ROOT, "tests", "fixtures", "tiny-qwen2")
MIB = 1024.0 * 1024.0

QWEN2 = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_act": "silu",
         "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1e6,
         "tie_word_embeddings": True, "vocab_size": 151936, "initializer_range": 0.02,
         "bos_token_id": None, "eos_token_id": None, "pad_token_id": None}
MODELS = {
    "0.5b": dict(QWEN2, hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, intermediate_size=4864),
    "1.5b": dict(QWEN2, hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, intermediate_size=8960),
    "tiny": dict(QWEN2, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, intermediate_size=128, vocab_size=512,
                 max_position_embeddings=256),
}
# --smoke: the CPU, the tiny config, a handful of steps and tokens
SMOKE = {"models": "tiny", "steps": 2, "warmup": 1, "batch": 2, "seq": 32, "mem_tokens": 128,
         "mem_steps": 1, "prompt": 8, "new": 8, "threads": 1, "liblora_device": "cpu",
         "torch_device": "cpu", "torch_dtype": "float32"}


def random_ids(vocab, shape, seed):
    """Token ids as a numpy int32 array (liblora takes it without a copy); where numpy is
    missing (a bare machine measuring liblora alone), an int32 buffer of that shape."""
    try:
        import numpy as np
    except ImportError:
        import array
        import random
        rng = random.Random(seed)
        n = shape[0] * (shape[1] if len(shape) > 1 else 1)
        flat = array.array("i", (rng.randrange(vocab) for _ in range(n)))
        return memoryview(flat).cast("B").cast("i", shape)
    return np.random.default_rng(seed).integers(0, vocab, size=shape, dtype=np.int32)


def liblora_options(args):
    return {"device": args.liblora_device, **({"threads": args.threads} if args.threads else {})}


# --- peak memory ---------------------------------------------------------------------------------
class _ProcessInfo(ctypes.Structure):  # nvmlProcessInfo_t (the _v2 / _v3 calls' layout)
    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong),
                ("gpuInstanceId", ctypes.c_uint), ("computeInstanceId", ctypes.c_uint)]


class _Memory(ctypes.Structure):  # nvmlMemory_t
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong),
                ("used", ctypes.c_ulonglong)]


NVML_VALUE_NOT_AVAILABLE = 2**64 - 1


class Nvml:
    """The few NVML calls the workers need, on the GPU that CUDA's device 0 is (the parent
    sets CUDA_DEVICE_ORDER=PCI_BUS_ID, NVML's order)."""

    def __init__(self):
        self.lib = ctypes.CDLL("libnvidia-ml.so.1")
        self._ok(self.lib.nvmlInit_v2(), "nvmlInit_v2")
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
        index = int(visible) if visible.isdigit() else 0
        self.dev = ctypes.c_void_p()
        self._ok(self.lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(self.dev)),
                 "nvmlDeviceGetHandleByIndex_v2(%d)" % index)
        self.procs = next((getattr(self.lib, n) for n in (
            "nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2")
            if hasattr(self.lib, n)), None)

    @staticmethod
    def _ok(rc, what):
        if rc != 0:
            raise RuntimeError("NVML %s failed with status %d" % (what, rc))

    def name(self):
        buf = ctypes.create_string_buffer(96)
        self._ok(self.lib.nvmlDeviceGetName(self.dev, buf, 96), "nvmlDeviceGetName")
        return buf.value.decode()

    def used(self):
        m = _Memory()
        self._ok(self.lib.nvmlDeviceGetMemoryInfo(self.dev, ctypes.byref(m)),
                 "nvmlDeviceGetMemoryInfo")
        return m.used

    def process_used(self, pid):
        """This process's device memory in bytes, or None where NVML does not list it."""
        if self.procs is None:
            return None
        infos, count = (_ProcessInfo * 256)(), ctypes.c_uint(256)
        if self.procs(self.dev, ctypes.byref(count), infos) != 0:
            return None
        for i in range(count.value):
            if infos[i].pid == pid and infos[i].usedGpuMemory != NVML_VALUE_NOT_AVAILABLE:
                return infos[i].usedGpuMemory
        return None


class PeakMemory:
    """The peak device memory of this process while it runs, sampled from a thread (both ways,
    reported by the better one), or its peak RSS on the CPU."""

    def __init__(self, on_gpu):
        self.nvml = Nvml() if on_gpu else None
        self.pid = os.getpid()
        if self.nvml:
            self.baseline = self.nvml.used()
            self.peak_proc = self.peak_dev = 0
            self.seen_proc = False
            self.stop = threading.Event()
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

    def _sample(self):
        v = self.nvml.process_used(self.pid)
        if v is not None:
            self.seen_proc = True
            self.peak_proc = max(self.peak_proc, v)
        self.peak_dev = max(self.peak_dev, self.nvml.used() - self.baseline)

    def _run(self):
        while not self.stop.wait(0.005):
            self._sample()

    def reset(self):
        """Forgets the peak so far (the current use is the new floor)."""
        if self.nvml:
            self.peak_proc = self.peak_dev = 0
            self._sample()

    def report(self):
        if not self.nvml:
            return {"mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                    "method": "peak RSS (ru_maxrss), CPU"}
        self._sample()
        if self.seen_proc:
            return {"mib": self.peak_proc / MIB, "method": "NVML process used memory"}
        return {"mib": self.peak_dev / MIB,
                "method": "NVML device used memory less its value before the model loaded"}

    def close(self):
        if self.nvml:
            self.stop.set()
            self.thread.join()


# --- workers (each in its own process) -------------------------------------------------------
def build_checkpoint(args, name, out):
    """A random checkpoint of config `name`, saved by transformers as safetensors; by
    liblora's lora_model_init_checkpoint (bf16) where transformers is missing and only
    liblora is measured."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM
    except ImportError:
        if args.sides != "liblora":
            raise
        import liblora
        cfg = {k: v for k, v in MODELS[name].items() if v is not None}
        liblora.Model.init_checkpoint(cfg, out, seed=1, dtype="bf16")
        return {"builder": "liblora.Model.init_checkpoint", "dtype": "bfloat16"}
    spec = dict(MODELS[name])
    kind = spec.pop("model_type")
    spec.pop("architectures")
    cfg = AutoConfig.for_model(kind, **spec)
    torch.manual_seed(1)
    dtype = getattr(torch, args.torch_dtype)
    with torch.device(args.torch_device):  # initialising 1.5B parameters on a CPU is slow
        m = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    m.save_pretrained(out)
    return {"builder": "transformers from_config + save_pretrained", "dtype": args.torch_dtype}


def probe_liblora(args):
    import liblora
    return {"device": liblora.Model(PROBE_MODEL, **liblora_options(args)).info()["device"]}


def time_steps(step, n):
    t = time.perf_counter()
    for _ in range(n):
        step()
    return time.perf_counter() - t


def liblora_train(args, path):
    import liblora
    mem = PeakMemory(args.liblora_device != "cpu")
    try:
        m = liblora.Model(path, **liblora_options(args))
        a = liblora.Adapter.create(m, seed=1, r=RANK, lora_alpha=ALPHA, lora_dropout=0.0,
                                   target_modules=ALL7, init_lora_weights=False)
        s = m.session(adapters=[a], train_activations=args.train_activations)
        opt = liblora.Optimizer(s, optimizer="adamw", lr=1e-4)
        x = random_ids(m.vocab_size, (args.batch, args.seq), 1)
        for _ in range(args.warmup):
            opt.step(x, x)
        dt = time_steps(lambda: opt.step(x, x), args.steps)
        out = {"train_tokens_per_s": args.steps * args.batch * args.seq / dt, "step_s": dt / args.steps}
        y = random_ids(m.vocab_size, (args.mem_tokens // args.seq, args.seq), 2)
        gpu = args.liblora_device != "cpu" and liblora.has_function("lora_device_memory")
        if gpu:
            liblora.device_memory(args.liblora_device, reset_peak=True)
        mem.reset()
        try:
            for _ in range(args.mem_steps):
                opt.step(y, y)
            out["peak"] = mem.report()
            if gpu:
                out["own_peak_mib"] = liblora.device_memory(args.liblora_device)[1] / MIB
        except liblora.LoraError as e:
            if e.status_name != "LORA_ERR_DEVICE_OUT_OF_MEMORY":
                raise
            out["peak"] = {"mib": None, "method": "out of device memory: %s" % e}
        return out
    finally:
        mem.close()


def liblora_decode(args, path):
    import liblora
    m = liblora.Model(path, **liblora_options(args))
    a = liblora.Adapter.create(m, seed=1, r=RANK, lora_alpha=ALPHA, target_modules=ALL7,
                               init_lora_weights=False)
    prompt = list(random_ids(m.vocab_size, (args.prompt,), 3).tolist())
    ctx = args.prompt + args.new

    def rate(s):
        s.generate(prompt, max_new_tokens=min(args.new, 16), do_sample=False)
        s.reset()
        t = time.perf_counter()
        toks = s.generate(prompt, max_new_tokens=args.new, do_sample=False)
        dt = time.perf_counter() - t
        if len(toks) != args.new:
            raise RuntimeError("liblora generated %d of %d tokens" % (len(toks), args.new))
        return args.new / dt

    s = m.session(adapters=[a], max_context=ctx)
    out = {"decode_unmerged_tokens_per_s": rate(s)}
    s.close()
    m.merge(a)
    s = m.session(max_context=ctx)
    out["decode_merged_tokens_per_s"] = rate(s)
    s.close()
    return out


def _peft_model(args, path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    import transformers.utils.logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if args.torch_device == "cpu":
        torch.set_num_threads(args.threads)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, args.torch_dtype),
                                                attn_implementation="sdpa").to(args.torch_device)
    return get_peft_model(base, LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0,
                                           init_lora_weights=False, task_type="CAUSAL_LM",
                                           target_modules=ALL7))


def _sync(args):
    import torch
    if args.torch_device != "cpu":
        torch.cuda.synchronize()


def peft_train(args, path):
    import torch
    on_gpu = args.torch_device != "cpu"
    mem = PeakMemory(on_gpu)
    try:
        pm = _peft_model(args, path)
        pm.train()
        opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-4)
        vocab = pm.config.vocab_size

        def batch(rows, seed):
            return torch.from_numpy(random_ids(vocab, (rows, args.seq), seed)).long().to(
                args.torch_device)

        def step(x):
            pm(input_ids=x, labels=x).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        x = batch(args.batch, 1)
        for _ in range(args.warmup):
            step(x)
        _sync(args)
        t = time.perf_counter()
        for _ in range(args.steps):
            step(x)
        _sync(args)
        dt = time.perf_counter() - t
        out = {"train_tokens_per_s": args.steps * x.numel() / dt, "step_s": dt / args.steps}
        y = batch(args.mem_tokens // args.seq, 2)
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        mem.reset()
        try:
            for _ in range(args.mem_steps):
                step(y)
            _sync(args)
            out["peak"] = mem.report()
            if on_gpu:
                out["own_peak_mib"] = torch.cuda.max_memory_allocated() / MIB
        except torch.cuda.OutOfMemoryError as e:
            out["peak"] = {"mib": None, "method": "out of device memory: %s" % e}
        return out
    finally:
        mem.close()


def peft_decode(args, path):
    import torch
    from transformers import GenerationConfig
    pm = _peft_model(args, path)
    pm.eval()
    vocab = pm.config.vocab_size
    prompt = torch.from_numpy(random_ids(vocab, (1, args.prompt), 3)).long().to(args.torch_device)

    def rate(model):
        kw = dict(input_ids=prompt, attention_mask=torch.ones_like(prompt))
        with torch.no_grad():
            model.generate(**kw, generation_config=GenerationConfig(
                do_sample=False, max_new_tokens=min(args.new, 16), eos_token_id=None,
                pad_token_id=0))
            gc = GenerationConfig(do_sample=False, max_new_tokens=args.new,
                                  min_new_tokens=args.new, eos_token_id=None, pad_token_id=0)
            _sync(args)
            t = time.perf_counter()
            out = model.generate(**kw, generation_config=gc)
            _sync(args)
            dt = time.perf_counter() - t
        n = out.shape[1] - args.prompt
        if n != args.new:
            raise RuntimeError("transformers generated %d of %d tokens" % (n, args.new))
        return n / dt

    res = {"decode_unmerged_tokens_per_s": rate(pm)}
    res["decode_merged_tokens_per_s"] = rate(pm.merge_and_unload())
    return res


WORKERS = {"liblora-train": liblora_train, "liblora-decode": liblora_decode,
           "peft-train": peft_train, "peft-decode": peft_decode}


def worker(args):
    role, target = args.worker
    try:
        if role == "build":
            res = build_checkpoint(args, target, args.worker_out)
        elif role == "probe":
            res = probe_liblora(args)
        else:
            res = WORKERS[role](args, target)
        print("RESULT " + json.dumps(res), flush=True)
        return 0
    except Exception as e:  # the parent prints it and stops; nothing is retried
        text = str(e) if hasattr(e, "status_name") else "%s: %s" % (type(e).__name__, e)
        print("RESULT " + json.dumps({"error": text}), flush=True)
        return 3


# --- the parent ---------------------------------------------------------------------------------
class Failed(Exception):
    pass


def run_child(args, role, target, extra=()):
    """Runs one worker in a child process (its stderr passes through), returns its result.
    Its limit is --timeout, less when the run's --budget has less left."""
    limit = args.timeout
    if args.budget:
        limit = min(limit, int(args.deadline - time.monotonic()))
        if limit <= 0:
            raise Failed("%s %s: not started: the --budget of %d s is spent"
                         % (role, target, args.budget))
    cmd = [sys.executable, os.path.abspath(__file__), *args.forward, *extra,
           "--worker", role, target]
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise Failed("%s %s: no result after %d s (killed); --timeout and --budget set the "
                     "limit" % (role, target, limit))
    lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
    if not lines:
        raise Failed("%s %s: exited %d without a result:\n%s" % (role, target, p.returncode,
                                                                 out[-2000:]))
    res = json.loads(lines[-1][len("RESULT "):])
    if "error" in res:
        raise Failed("%s %s: %s" % (role, target, res["error"]))
    print("peft_compare: %s %s: %.1f s" % (role, os.path.basename(target),
                                           time.perf_counter() - t), file=sys.stderr, flush=True)
    return res


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="0.5b,1.5b", help="comma-separated: 0.5b, 1.5b, tiny")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed training steps before")
    ap.add_argument("--batch", type=int, default=8, help="rows per timed training step")
    ap.add_argument("--seq", type=int, default=1024, help="tokens per row")
    ap.add_argument("--mem-tokens", type=int, default=16384,
                    help="tokens per step of the peak-memory steps (rows of --seq)")
    ap.add_argument("--mem-steps", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=128, help="decode: prompt tokens")
    ap.add_argument("--new", type=int, default=256, help="decode: generated tokens")
    ap.add_argument("--threads", type=int, default=0,
                    help="host threads (liblora's threads, torch's on the CPU); 0: default")
    ap.add_argument("--peak-tflops", type=float, default=989.0,
                    help="peak dense bf16 TFLOP/s for MFU (H100 SXM / H200: 989)")
    ap.add_argument("--liblora-device", default="cuda")
    ap.add_argument("--train-activations", default="auto", choices=["auto", "bf16", "float32"],
                    help="liblora's session option: what a training step keeps for the "
                         "backward (auto: bf16 for bf16 weights on a GPU)")
    ap.add_argument("--torch-device", default="cuda")
    ap.add_argument("--torch-dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--sides", default="liblora,peft",
                    help="liblora, peft or both (a machine without peft: liblora)")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per child process")
    ap.add_argument("--budget", type=int, default=0,
                    help="seconds for the whole run (0: none); what is left then is not run")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    ap.add_argument("--keep", metavar="DIR", help="build the checkpoints in DIR and keep them")
    ap.add_argument("--smoke", action="store_true",
                    help="the CPU, a tiny config, 2 steps: checks the whole path in seconds")
    ap.add_argument("--worker", nargs=2, metavar=("ROLE", "TARGET"), help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.smoke:  # smoke values replace the defaults, options given explicitly still win
        given = {a.split("=")[0][2:].replace("-", "_") for a in argv if a.startswith("--")}
        for k, v in SMOKE.items():
            if k not in given:
                setattr(args, k, v)
    if args.mem_tokens % args.seq:
        ap.error("--mem-tokens must be a multiple of --seq")
    for name in args.models.split(","):
        if name not in MODELS:
            ap.error("--models: unknown model %r (known: %s)" % (name, ", ".join(MODELS)))
    # what every child gets: the resolved settings, explicitly
    args.forward = ["--steps", str(args.steps), "--warmup", str(args.warmup),
                    "--batch", str(args.batch), "--seq", str(args.seq),
                    "--mem-tokens", str(args.mem_tokens), "--mem-steps", str(args.mem_steps),
                    "--prompt", str(args.prompt), "--new", str(args.new),
                    "--threads", str(args.threads), "--liblora-device", args.liblora_device,
                    "--train-activations", args.train_activations,
                    "--torch-device", args.torch_device, "--torch-dtype", args.torch_dtype,
                    "--sides", args.sides]
    if args.threads == 0:
        args.threads = None
    return args


def fmt(v, spec="%.1f"):
    return "-" if v is None else spec % v


def fmt_pct(v):
    return "-" if v is None else "%.3g%%" % (100 * v)


def ratio(a, b):
    return "%.2fx" % (a / b) if a is not None and b else "-"


def table(args, results):
    rows = []
    for name, r in results.items():
        lib, peft = r.get("liblora", {}), r.get("peft", {})
        tr = "train tokens/s (%d x %d)" % (args.batch, args.seq)
        rows.append((name, tr, fmt(lib.get("train_tokens_per_s")),
                     fmt(peft.get("train_tokens_per_s")),
                     ratio(lib.get("train_tokens_per_s"), peft.get("train_tokens_per_s"))))
        rows.append((name, "train MFU at %g TFLOP/s" % args.peak_tflops,
                     fmt_pct(lib.get("mfu")), fmt_pct(peft.get("mfu")), ""))
        mem = "peak MiB, %d tokens/step (below)" % args.mem_tokens
        lp, pp = lib.get("peak", {}).get("mib"), peft.get("peak", {}).get("mib")
        rows.append((name, mem, fmt(lp, "%.0f"), fmt(pp, "%.0f"), ratio(lp, pp)))
        lo, po = lib.get("own_peak_mib"), peft.get("own_peak_mib")
        if lo is not None or po is not None:
            rows.append((name, "peak MiB allocated (device_memory; max_memory_allocated)",
                         fmt(lo, "%.0f"), fmt(po, "%.0f"), ratio(lo, po)))
        for mode in ("unmerged", "merged"):
            k = "decode_%s_tokens_per_s" % mode
            rows.append((name, "decode tokens/s, %s (%d after %d)" % (mode, args.new,
                                                                     args.prompt),
                         fmt(lib.get(k)), fmt(peft.get(k)), ratio(lib.get(k), peft.get(k))))
    head = ("model", "measure", "liblora", "transformers+PEFT", "liblora/PEFT")
    widths = [max(len(x[i]) for x in [head] + rows) for i in range(len(head))]
    line = lambda x: "  ".join(s.ljust(w) for s, w in zip(x, widths)).rstrip()
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(x) for x in rows])


def main(argv):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA's device 0 is NVML's device 0
    import liblora
    sides = [s for s in args.sides.split(",") if s]
    gpu = "cpu"
    if "cuda" in (args.liblora_device + args.torch_device):
        try:
            gpu = Nvml().name()
        except (OSError, RuntimeError) as e:
            gpu = "unknown GPU (NVML: %s)" % e
    results, failures = {}, []
    args.deadline = time.monotonic() + args.budget
    if "liblora" in sides:
        try:
            run_child(args, "probe", PROBE_MODEL)
        except Failed as e:
            print("peft_compare: liblora cannot run on device %r: %s"
                  % (args.liblora_device, e), file=sys.stderr)
            return 2
    work = args.keep or tempfile.mkdtemp(prefix="peft-compare-")
    try:
        for name in args.models.split(","):
            path = os.path.join(work, name)
            built = {"builder": "kept from an earlier run (--keep)"}
            try:
                if not os.path.exists(os.path.join(path, "config.json")):
                    built = run_child(args, "build", name, ["--worker-out", path])
            except Failed as e:
                failures.append(str(e))
                continue
            fl = liblora.flops(config=path, lora={"r": RANK, "lora_alpha": ALPHA,
                                                  "target_modules": ALL7},
                               context=args.seq, batch=args.batch)
            r = results[name] = {"train_flops_per_token": fl["train"]["per_token"],
                                 "parameters": fl["parameters"], "checkpoint": built}
            for side in sides:
                res = r[side] = {}
                for mode in ("train", "decode"):
                    try:  # one failed measurement (out of memory, a timeout) ends only itself
                        res.update(run_child(args, "%s-%s" % (side, mode), path))
                    except Failed as e:
                        failures.append(str(e))
                        res.setdefault("errors", []).append(str(e))
                if "train_tokens_per_s" in res:
                    res["mfu"] = liblora.mfu(fl["train"]["per_token"],
                                             res["train_tokens_per_s"],
                                             args.peak_tflops * 1e12)[1]
            if not args.keep:
                shutil.rmtree(path)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("device %s; liblora on %s, transformers + PEFT %s on %s; LoRA r %d alpha %d on all "
          "seven projections, AdamW; %d warm-up + %d timed steps"
          % (gpu, args.liblora_device, args.torch_dtype, args.torch_device, RANK, ALPHA,
             args.warmup, args.steps))
    for name, r in results.items():
        print("%s: %d parameters (%s, %s), %d train FLOPs per token at context %d "
              "(liblora.flops)" % (name, r["parameters"], r["checkpoint"]["builder"],
                                   r["checkpoint"].get("dtype", "?"), r["train_flops_per_token"],
                                   args.seq))
    print(table(args, results))
    for side in sides:
        methods = sorted({r[side]["peak"]["method"] for r in results.values()
                          if "peak" in r.get(side, {})})
        print("peak memory, %s: %s" % (side, "; ".join(methods) or "not measured"))
    for f in failures:
        print("FAILED: %s" % f)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": gpu, "peak_tflops": args.peak_tflops, "failures": failures,
                       "settings": {k: v for k, v in vars(args).items()
                                    if k not in ("forward", "deadline", "worker")},
                       "models": results}, f, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
