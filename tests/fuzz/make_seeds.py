#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets, tests/fuzz/seeds/NAME/, from the fixtures.

Run from the repository root after `make` (the checkpoint seeds are saved by liblora itself,
through the Python bindings): python3 tests/fuzz/make_seeds.py. The seeds are small on purpose:
libFuzzer mutates faster and reaches further from a few short inputs than from big ones.
Files that stand for several files join them with SEP (FZ_SEP in tests/fuzz/harness.h).
"""

import json
import os
import shutil
import struct
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
FIX = os.path.join(ROOT, "tests", "fixtures")
SEEDS = os.path.join(ROOT, "tests", "fuzz", "seeds")
SEP = b"\n--8<--\n"
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

# as in tests/fuzz/fuzz_checkpoint.c
CKPT_ADAPTER = {"r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "layers_to_transform": [1]}
CKPT_OPTIMIZER = {"lr": 0.01, "lr_scheduler_type": "linear", "num_training_steps": 10}

SIZES = {"F32": 4, "BF16": 2, "F16": 2, "I64": 8, "U8": 1, "I32": 4, "BOOL": 1}


def safetensors(tensors, metadata=None, pad=0):
    """tensors: [(name, dtype, shape, bytes or None for zeros)] laid out in order."""
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        n = SIZES[dtype]
        for d in shape:
            n *= d
        raw = raw if raw is not None else bytes(n)
        assert len(raw) == n, name
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode() + b" " * pad
    return struct.pack("<Q", len(text)) + text + data


def floats(values, dtype="F32"):
    if dtype == "F32":
        return struct.pack("<%df" % len(values), *values)
    return b"".join(struct.pack("<f", v)[2:] for v in values)   # BF16: the high half


def read(*parts):
    with open(os.path.join(*parts), "rb") as f:
        return f.read()


def write(name, seeds):
    d = os.path.join(SEEDS, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for i, data in enumerate(seeds):
        with open(os.path.join(d, "seed-%02d" % i), "wb") as f:
            f.write(data)


def seeds_safetensors():
    return [
        safetensors([("w", "F32", [2, 3], floats([1, 2, 3, 4, 5, 6])),
                     ("b", "BF16", [4], floats([0.5, -1, 2, 3], "BF16")),
                     ("step", "I64", [], struct.pack("<q", 7)), ("empty", "F32", [0, 5], b"")],
                    {"format": "pt"}),
        safetensors([("mask", "BOOL", [3], b"\x01\x00\x01"), ("ids", "I32", [1, 2], None),
                     ("bytes", "U8", [5], b"hello")], pad=6),
        safetensors([]),
    ]


def seeds_shard_index():
    one = safetensors([("model.embed_tokens.weight", "F32", [2, 2], None),
                       ("model.norm.weight", "F32", [2], None)])
    two = safetensors([("lm_head.weight", "BF16", [2, 2], None)])
    index = {"metadata": {"total_size": 32}, "weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "model.norm.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors"}}
    alone = {"weight_map": {"lm_head.weight": "model-00001-of-00002.safetensors"}}
    return [json.dumps(index, indent=1).encode() + SEP + one + SEP + two,
            json.dumps(alone).encode() + SEP + two]


def seeds_config():
    dirs = ["tiny-qwen2", "tiny-qwen3", "tiny-llama", "qwen2.5-0.5b-config"]
    out = [read(FIX, d, "config.json") for d in dirs]
    cfg = json.loads(read(FIX, "tiny-qwen3", "config.json"))
    cfg.pop("rope_theta", None)
    cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": 1000000.0}
    cfg["layer_types"] = ["full_attention"] * cfg["num_hidden_layers"]
    out.append(json.dumps(cfg).encode())
    return out


def model_tensors(cfg):
    """The weights a config asks for (as src/model/weights.c lists them), zero F32 or BF16."""
    C, V, I = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim", C // H)
    dtype = "BF16" if cfg.get("torch_dtype") == "bfloat16" else "F32"
    qwen2, qwen3 = cfg["model_type"] == "qwen2", cfg["model_type"] == "qwen3"
    out = [("model.embed_tokens.weight", [V, C]), ("model.norm.weight", [C])]
    if not cfg.get("tie_word_embeddings"):
        out.append(("lm_head.weight", [V, C]))
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        out += [(p + "input_layernorm.weight", [C]), (p + "post_attention_layernorm.weight", [C]),
                (p + "self_attn.q_proj.weight", [H * D, C]), (p + "self_attn.k_proj.weight", [KV * D, C]),
                (p + "self_attn.v_proj.weight", [KV * D, C]), (p + "self_attn.o_proj.weight", [C, H * D]),
                (p + "mlp.gate_proj.weight", [I, C]), (p + "mlp.up_proj.weight", [I, C]),
                (p + "mlp.down_proj.weight", [C, I])]
        if qwen2:
            out += [(p + "self_attn.%s_proj.bias" % x, [n]) for x, n in
                    [("q", H * D), ("k", KV * D), ("v", KV * D)]]
        if qwen3:
            out += [(p + "self_attn.q_norm.weight", [D]), (p + "self_attn.k_norm.weight", [D])]
    return [(name, dtype, shape, None) for name, shape in sorted(out)]


def seeds_model_folder():
    """Tiny configs of each family (a few hundred weights) with their weights."""
    base = {"vocab_size": 8, "hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "hidden_act": "silu",
            "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 10000.0}
    out = []
    for extra in [{"model_type": "qwen2", "tie_word_embeddings": True},
                  {"model_type": "qwen3", "head_dim": 4, "torch_dtype": "bfloat16"},
                  {"model_type": "llama", "attention_bias": False, "num_hidden_layers": 2}]:
        cfg = dict(base, **extra)
        out.append(json.dumps(cfg, indent=1).encode() + SEP + safetensors(model_tensors(cfg)))
    return out


def adapter_tensors(modules, r, dtype, layers):
    """The tensors of an adapter of the tiny Qwen2 fixture (hidden 64, 4 heads, 2 kv heads,
    intermediate 160)."""
    shapes = {"q_proj": (64, 64), "k_proj": (32, 64), "v_proj": (32, 64), "o_proj": (64, 64),
              "gate_proj": (160, 64), "up_proj": (160, 64), "down_proj": (64, 160)}
    out = []
    for layer in layers:
        for m in sorted(modules):
            parent = "mlp" if m in ("gate_proj", "up_proj", "down_proj") else "self_attn"
            o, i = shapes[m]
            base = "base_model.model.model.layers.%d.%s.%s." % (layer, parent, m)
            out.append((base + "lora_A.weight", dtype, [r, i], floats([0.01] * (r * i), dtype)))
            out.append((base + "lora_B.weight", dtype, [o, r], None))
    return sorted(out)


def seeds_adapter():
    cfg = json.loads(read(FIX, "tiny-qwen2", "adapter", "adapter_config.json"))
    cfg.update(r=1, target_modules=["q_proj", "v_proj"])
    small = json.dumps(cfg, indent=1).encode() + SEP + safetensors(
        adapter_tensors(["q_proj", "v_proj"], 1, "F32", [0, 1]), {"format": "pt"})
    cfg = {"r": 2, "lora_alpha": 4, "target_modules": "all-linear", "layers_to_transform": [0],
           "rank_pattern": {"down_proj": 1}, "alpha_pattern": {"model.layers.0.mlp.up_proj": 8},
           "use_rslora": True, "init_lora_weights": "gaussian"}
    tensors = [t for t in adapter_tensors(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                           "up_proj"], 2, "BF16", [0])]
    tensors += adapter_tensors(["down_proj"], 1, "BF16", [0])
    patterned = json.dumps(cfg).encode() + SEP + safetensors(sorted(tensors))
    return [small, patterned, json.dumps(cfg).encode()]


def seeds_tokenizer_load():
    """The embedded model's tokenizer, and a variant with ByteLevel's own regex, no normalizer,
    ignore_merges and non-special added tokens with every matching flag; with its
    tokenizer_config.json and a text to encode, or alone."""
    tiny = os.path.join(ROOT, "models", "tiny")
    tok, cfg = read(tiny, "tokenizer.json"), read(tiny, "tokenizer_config.json")
    text = "Hello, world! 12 <|im_start|>user\n\u00e9t\u00e9  x<|im_end|>".encode()
    var = json.loads(tok)
    var["normalizer"] = None
    var["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False,
                            "trim_offsets": False, "use_regex": True}
    var["model"]["ignore_merges"] = True
    top = max(t["id"] for t in var["added_tokens"])
    for i, (content, flags) in enumerate([("wor", "lstrip"), ("ld", "rstrip"),
                                          ("12", "single_word"), ("HELLO", "normalized")]):
        token = {"id": top + 1 + i, "content": content, "single_word": False, "lstrip": False,
                 "rstrip": False, "normalized": False, "special": False}
        token[flags] = True
        var["added_tokens"].append(token)
    var = json.dumps(var, ensure_ascii=False).encode()
    return [tok + SEP + cfg + SEP + text, tok, var + SEP + b"{}" + SEP + text]


def seeds_tokenize():
    texts = []
    with open(os.path.join(FIX, "qwen-tokenizer", "golden_encodings.jsonl"), encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"].encode())
    texts = [t for t in texts if len(t) <= 200][:24]
    texts.append("<|im_start|>user\nhi<|im_end|>\n".encode())
    return [bytes([i % 4]) + t for i, t in enumerate(texts)]


def seeds_jsonl_line():
    """The first byte's format bits match the line (auto or its own format); the other option
    bits vary from seed to seed (see tests/fuzz/fuzz_jsonl_line.c)."""
    out = []
    for fmt, name in [(1, "chat.jsonl"), (2, "prompt_completion.jsonl"), (3, "text.jsonl"),
                      (0, "auto.jsonl")]:
        with open(os.path.join(FIX, "data", name), "rb") as f:
            lines = [l for l in f.read().split(b"\n") if l.strip()][:4]
        for i, line in enumerate(lines):
            bits = (len(out) * 37) & 0xfc
            out.append(bytes([bits | (fmt if i % 2 else 0)]) + line + b"\n")
    # conversations of the chat golden cases (thinking, reasoning_content, tool turns), one per
    # case that has an assistant turn, under each chat template in turn
    seen = set()
    with open(os.path.join(FIX, "chat", "golden.jsonl"), encoding="utf-8") as f:
        for line in f:
            case = json.loads(line)
            msgs = case["messages"]
            if case["case"] in seen or not any(m["role"] == "assistant" for m in msgs):
                continue
            seen.add(case["case"])
            template = (len(seen) % 4) << 6
            out.append(bytes([template | 1]) +
                       json.dumps({"messages": msgs}, ensure_ascii=False).encode() + b"\n")
    return out


def seeds_checkpoint():
    import liblora
    model = liblora.Model(os.path.join(FIX, "tiny-qwen2"), threads=1)
    adapter = liblora.Adapter.create(model, seed=1, **CKPT_ADAPTER)
    session = liblora.Session(model, adapters=[adapter])
    opt = liblora.Optimizer(session, **CKPT_OPTIMIZER)
    opt.step([[1, 5, 9, 13, 17, 21]])
    tmp = tempfile.mkdtemp()
    try:
        d = os.path.join(tmp, "ckpt")
        opt.save_checkpoint(d, data_position=3)
        files = [read(d, "trainer_state.json"), read(d, "optimizer.safetensors"),
                 read(d, "adapter_0", "adapter_config.json"),
                 read(d, "adapter_0", "adapter_model.safetensors")]
    finally:
        shutil.rmtree(tmp)
    return [SEP.join(files), SEP.join(files[:2])]


def seeds_manifest():
    """liblora_manifest.json SEP a.bin SEP .liblora-staging/a.bin (tests/fuzz/fuzz_manifest.c)."""
    import hashlib

    def manifest(files):
        return json.dumps({"format": "liblora-manifest", "format_version": 1,
                           "files": {n: {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                                     for n, b in files.items()}}).encode()

    good, other = b"the saved bytes", b"the bytes of an interrupted save"
    return [manifest({"a.bin": good}) + SEP + good,
            manifest({"a.bin": good}) + SEP + other + SEP + good,    # the staged copy matches
            manifest({"a.bin": good, "b.json": b"{}"}) + SEP + good,   # b.json is missing
            manifest({"a.bin": other}) + SEP + good + SEP + good,    # neither matches
            manifest({})]


def main():
    for name, make in [("safetensors", seeds_safetensors), ("shard_index", seeds_shard_index),
                       ("config", seeds_config), ("adapter", seeds_adapter),
                       ("tokenizer_load", seeds_tokenizer_load), ("tokenize", seeds_tokenize),
                       ("jsonl_line", seeds_jsonl_line), ("checkpoint", seeds_checkpoint),
                       ("model_folder", seeds_model_folder), ("manifest", seeds_manifest)]:
        seeds = make()
        write(name, seeds)
        print("%s: %d seeds, %d bytes" % (name, len(seeds), sum(len(s) for s in seeds)))


if __name__ == "__main__":
    main()
