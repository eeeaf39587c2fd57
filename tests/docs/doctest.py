#!/usr/bin/env python3
"""Runs every fenced code block of the documentation (README.md, docs/*.md).

Usage, from the repository root:  python3 tests/docs/doctest.py RESULT_FILE FILE.md...

Every block must be classified by an HTML comment on the line just before its opening fence;
the syntax is documented in docs/internals.md ("Documentation tests"). Prints "ok - FILE:LINE
kind" or "FAIL - FILE:LINE kind: why" per block (text blocks: "-- FILE:LINE text"), then a
closing line; writes "passed failed skipped" to RESULT_FILE; exits 1 on any failure.
Python 3 standard library only.
"""

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = os.path.join(ROOT, "include", "lora.h")
# What a block's working folder sees of the repository (read-only by convention).
LINKED = ["tests", "bin", "lib", "include", "examples", "bindings", "docs", "src"]
TIMEOUT = 120

MARKER = re.compile(r"^<!--\s*(test|copy-of):\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(```+|~~~+)(.*)$")
KINDS = {"c", "c-fragment", "python", "sh", "json", "output", "usage", "paths", "text", "skip"}

# --- named setups: shell run once per harness run in a folder of their own; what they create
# there is linked into the working folder of every block that names them. -----------------------
TQ_CONFIG = """{"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": 151936,
 "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
 "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "tie_word_embeddings": true,
 "hidden_act": "silu", "torch_dtype": "float32"}"""
SETUPS = {
    # tq/: the CLI tests' tiny random model with the real Qwen tokenizer (tests/run_cli.sh)
    "tq": ([], "cat > tq.json <<'JSON'\n" + TQ_CONFIG + "\nJSON\n"
           "lora init --config tq.json --out tq --seed 3 >/dev/null && rm tq.json\n"
           "cp tests/fixtures/qwen-tokenizer/tokenizer.json "
           "tests/fixtures/qwen-tokenizer/tokenizer_config.json tq/\n"),
    # sft.jsonl: the CLI tests' ten arithmetic conversations
    "sft": ([], "python3 - <<'PY'\nimport json\nwith open('sft.jsonl', 'w') as f:\n"
            "    for i in range(10):\n        a, b = i + 3, 2 * i + 1\n"
            "        f.write(json.dumps({'messages': [\n"
            "            {'role': 'user', 'content': f'What is {a} plus {b}?'},\n"
            "            {'role': 'assistant', 'content': f'The answer is \\\\boxed{{{a + b}}}.'}"
            "]}) + '\\n')\nPY\n"),
    # run1/: a LoRA adapter trained on sft.jsonl as docs/cli.md's lora train example does
    "run1": (["tq", "sft"], "lora train --model tq --data sft.jsonl --epochs 4 --batch-size 2 "
             "--grad-accum 2 --lr 0.02 --lora-r 4 --threads 1 --seed 5 --out run1 "
             "--eval-split 0.2 >/dev/null\n"),
    # q27m/: the benchmark checkpoint (tests/bench/qwen2-27m.json), seed 1
    "q27m": ([], "lora init --config tests/bench/qwen2-27m.json --out q27m --seed 1 >/dev/null\n"),
    # saved-adapter/: r 8, alpha 16, all-linear on tiny-qwen2, saved by lora_adapter_save
    "saved-adapter": ([], "python3 - <<'PY'\nimport liblora\n"
                      "m = liblora.Model('tests/fixtures/tiny-qwen2')\n"
                      "liblora.Adapter.create(m, r=8, lora_alpha=16, target_modules='all-linear',"
                      " seed=0).save('saved-adapter')\nPY\n"),
    # chats.jsonl, stats.json: tests/fixtures/data/chat.jsonl plus two bad lines, loaded
    # leniently with the Qwen tokenizer, and the dataset's statistics
    "dataset-stats": ([], "python3 - <<'PY'\nimport json, liblora\n"
                      "bad = '{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, "
                      "{\"role\": \"assistant\", \"content\": \"\"}]}\\nnot json\\n'\n"
                      "open('chats.jsonl', 'w').write(open('tests/fixtures/data/chat.jsonl')"
                      ".read() + bad)\n"
                      "tok = liblora.Tokenizer.load('tests/fixtures/qwen-tokenizer')\n"
                      "ds = liblora.Dataset.load(tok, 'chats.jsonl', strict=False)\n"
                      "open('stats.json', 'w').write(json.dumps(ds.stats()))\nPY\n"),
    # installed/: make install into a private prefix; the block gets PKG_CONFIG_PATH for it
    # (and app.c, a copy of examples/generate_ids.c, to build against it)
    "installed": ([], "make -s -C \"$LORA_ROOT\" install PREFIX=\"$PWD/installed\" >/dev/null\n"
                  "cp examples/generate_ids.c app.c\n"),
}


class Block:
    def __init__(self, path, line, info, lines, marker):
        self.path, self.line, self.info, self.lines = path, line, info, lines
        self.text = "".join(l + "\n" for l in lines)
        self.kind, self.opts, self.error = None, {}, None
        self.stdout = None  # what a run printed, for a following output block
        if marker is None:
            self.error = "unclassified block: put a <!-- test: KIND ... --> line before it"
            return
        what, rest = marker
        try:
            words = shlex.split(rest)
        except ValueError as e:
            self.error = "malformed marker: %s" % e
            return
        if what == "copy-of":
            self.kind = "copy-of"
            if not words:
                self.error = "copy-of needs a path"
                return
            self.opts["path"] = words.pop(0)
        else:
            if not words or words[0] not in KINDS:
                self.error = "unknown kind %r (one of %s)" % (words[0] if words else "",
                                                               ", ".join(sorted(KINDS)))
                return
            self.kind = words.pop(0)
        for w in words:
            if "=" not in w:
                self.error = "option %r is not key=value" % w
                return
            k, v = w.split("=", 1)
            self.opts[k] = v

    @property
    def where(self):
        return "%s:%d" % (self.path, self.line)


def indented_code(lines, i):
    """Markdown's indented code block: 4 spaces after a blank line that does not continue a
    list item (list continuations here are indented by 2)."""
    if not lines[i].startswith(("    ", "\t")) or i == 0 or lines[i - 1].strip():
        return False
    k = i - 1
    while k >= 0 and not lines[k].strip():
        k -= 1
    return k < 0 or not re.match(r"\s|[-*+]\s|\d+[.)]\s", lines[k])


def parse(path):
    """The fenced blocks of a Markdown file, and markers that precede no block."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks, strays = [], []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            if MARKER.match(lines[i]) and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
                strays.append((i + 1, "a test marker not followed by a block"))
            if indented_code(lines, i):
                strays.append((i + 1, "an indented code block: use a fence with a marker"))
            i += 1
            continue
        fence, info = m.group(1), m.group(2).strip()
        j = i + 1
        while j < len(lines) and not (lines[j].startswith(fence[0] * len(fence)) and
                                      lines[j].strip() == fence[0] * len(lines[j].strip())):
            j += 1
        mk = MARKER.match(lines[i - 1]) if i > 0 else None
        blocks.append(Block(path, i + 1, info, lines[i + 1:j],
                            (mk.group(1), mk.group(2)) if mk else None))
        i = j + 1
    return blocks, strays


# --- working folders and setups ----------------------------------------------------------------
class Env:
    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="lora-docs-")
        self.count = 0
        self.ready = {}
        self.env = dict(os.environ)
        self.env["PATH"] = os.path.join(ROOT, "bin") + os.pathsep + self.env.get("PATH", "")
        self.env["PYTHONPATH"] = os.path.join(ROOT, "bindings", "python")
        self.env["LORA_ROOT"] = ROOT
        self.env.pop("LIBLORA_PATH", None)
        self.env["LC_ALL"] = "C.UTF-8"

    def folder(self, name):
        d = os.path.join(self.base, name)
        os.makedirs(d)
        for n in LINKED:
            os.symlink(os.path.join(ROOT, n), os.path.join(d, n))
        return d

    def setup(self, name):
        """The folder where setup NAME ran (once); raises RuntimeError on failure."""
        if name in self.ready:
            return self.ready[name]
        if name not in SETUPS:
            raise RuntimeError("unknown setup %r (one of %s)" % (name, ", ".join(SETUPS)))
        deps, script = SETUPS[name]
        d = self.folder("setup-" + name)
        for dep in deps:
            self.link(self.setup(dep), d)
        r = subprocess.run(["sh", "-e", "-c", script], cwd=d, env=self.env, timeout=TIMEOUT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError("setup %s failed (exit %d): %s" % (name, r.returncode,
                                                                 r.stdout.strip()[-400:]))
        self.ready[name] = d
        return d

    @staticmethod
    def link(src, dst):
        for n in os.listdir(src):
            if n not in LINKED and not os.path.exists(os.path.join(dst, n)):
                os.symlink(os.path.join(src, n), os.path.join(dst, n))

    def workdir(self, block):
        self.count += 1
        d = self.folder("block-%d" % self.count)
        env = dict(self.env)
        for name in block.opts.get("setup", "").split():
            self.link(self.setup(name), d)
            if name == "installed":
                env["PKG_CONFIG_PATH"] = os.path.join(d, "installed", "lib", "pkgconfig")
        return d, env

    def close(self):
        shutil.rmtree(self.base, ignore_errors=True)


class Fail(Exception):
    pass


def run(cmd, cwd, env, shell=False, stdin=None):
    try:
        r = subprocess.run(cmd, cwd=cwd, env=env, shell=shell, input=stdin, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT,
                           executable="/bin/sh" if shell else None)
    except subprocess.TimeoutExpired:
        raise Fail("timed out after %d s: %s" % (TIMEOUT, cmd if shell else " ".join(cmd)))
    return r.returncode, r.stdout


def tail(text, n=600):
    text = text.strip()
    return text if len(text) <= n else "..." + text[-n:]


# --- comparing output with what a block shows ---------------------------------------------------
def line_pattern(expected, mask):
    """A regex for one expected line: '[...]' matches any text, mask matches are wildcards."""
    parts = re.split(r"(\[\.\.\.\])", expected)
    out = []
    for p in parts:
        if p == "[...]":
            out.append(".*?")
        elif mask:
            k = 0
            for q in re.finditer(mask, p):
                out.append(re.escape(p[k:q.start()]))
                out.append("(?:%s)" % mask)
                k = q.end()
            out.append(re.escape(p[k:]))
        else:
            out.append(re.escape(p))
    return re.compile("".join(out) + r"\Z")


def match_output(expected, actual, mask):
    """None when the actual lines match the expected ones, else a description of the first
    difference. A line '...' matches any number of lines."""
    exp = [l.rstrip() for l in expected]
    act = [l.rstrip() for l in actual]
    pats = [None if l == "..." else line_pattern(l, mask) for l in exp]
    memo = {}

    def m(i, j):
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(pats):
            ok = j == len(act)
        elif pats[i] is None:
            ok = any(m(i + 1, k) for k in range(j, len(act) + 1))
        else:
            ok = j < len(act) and pats[i].match(act[j]) is not None and m(i + 1, j + 1)
        memo[(i, j)] = ok
        return ok

    if m(0, 0):
        return None
    # the first expected line that cannot be matched in order, for the message
    j = 0
    for i, p in enumerate(pats):
        if p is None:
            continue
        while j < len(act) and not p.match(act[j]):
            j += 1
        if j == len(act):
            return "expected line %r not found in the output:\n%s" % (exp[i], tail("\n".join(act)))
        j += 1
    return "output has other lines than the block:\n%s" % tail("\n".join(act))


# --- the kinds -----------------------------------------------------------------------------------
def status_functions():
    text = open(HEADER, encoding="utf-8").read().replace("\n", " ")
    return sorted(set(re.findall(r"LORA_API\s+lora_status\s+(lora_[a-z0-9_]+)\s*\(", text)))


def api_functions():
    text = open(HEADER, encoding="utf-8").read().replace("\n", " ")
    names = set()
    for decl in re.findall(r"LORA_API [^;(]*\(", text):
        m = re.search(r"[ *]([a-z0-9_]+)\($", decl)
        if m and m.group(1).startswith("lora_"):
            names.add(m.group(1))
    return names


CC = os.environ.get("CC", "cc")
CFLAGS = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror"]


def compile_c(src, d, env, extra=()):
    with open(os.path.join(d, "prog.c"), "w", encoding="utf-8") as f:
        f.write(src)
    rc, out = run([CC] + CFLAGS + list(extra) + ["-I", os.path.join(ROOT, "include"), "prog.c",
                  "-o", "prog", "-L", os.path.join(ROOT, "lib"),
                  "-Wl,-rpath," + os.path.join(ROOT, "lib"), "-llora", "-lm", "-pthread"], d, env)
    if rc != 0:
        raise Fail("does not compile:\n" + tail(out, 1500))


def run_program(block, d, env):
    args = shlex.split(block.opts.get("args", ""))
    rc, out = run(["./prog"] + args, d, env)
    want = int(block.opts.get("exit", "0"))
    if rc != want:
        raise Fail("exit %d (expected %d):\n%s" % (rc, want, tail(out)))
    check_expect(block, out)
    block.stdout = out


def check_expect(block, out):
    if "expect" in block.opts and not re.search(block.opts["expect"], out, re.M):
        raise Fail("no match for expect=%r in:\n%s" % (block.opts["expect"], tail(out)))


def do_c(block, env):
    d, e = env.workdir(block)
    compile_c("#line 1 \"%s:%d\"\n" % (block.path, block.line + 1) + block.text, d, e)
    run_program(block, d, e)


# Handles a fragment may take from its prelude (prelude="model session ..."); the names are
# the ones the docs use.
PRELUDES = {
    "st": "lora_status st = LORA_OK;",
    "model": "lora_model *model = NULL;\n"
             "lora_model_load(\"tests/fixtures/tiny-qwen2\", NULL, &model);",
    "session": "lora_session *s = NULL;\nlora_session_create(model, NULL, &s);",
    "sampler": "lora_sampler *smp = NULL;\n"
               "lora_sampler_create(\"{\\\"max_new_tokens\\\": 8}\", &smp);",
    "tokenizer": "lora_tokenizer *tok = NULL;\n"
                 "lora_tokenizer_load(\"tests/fixtures/qwen-tokenizer\", NULL, &tok);",
    # opt: an optimizer over an adapter on the tq model (setup="tq")
    "tq-optimizer": "lora_model *tq_model = NULL;\nlora_model_load(\"tq\", NULL, &tq_model);\n"
                    "lora_session *tq_s = NULL;\nlora_session_create(tq_model, NULL, &tq_s);\n"
                    "lora_adapter *tq_a = NULL;\n"
                    "lora_adapter_create(tq_model, \"{\\\"r\\\": 4}\", 0, &tq_a);\n"
                    "float tq_one = 1.0f;\nlora_session_set_adapters(tq_s, &tq_a, &tq_one, 1);\n"
                    "lora_optimizer *opt = NULL;\nlora_optimizer_create(tq_s, NULL, &opt);",
    "adapter": "lora_adapter *adapter = NULL;\n"
               "lora_adapter_load(model, \"tests/fixtures/tiny-qwen2/adapter\", &adapter);",
}


def split_file_scope(lines):
    """Leading preprocessor lines and static/typedef definitions go to file scope."""
    i, depth = 0, 0
    while i < len(lines):
        l = lines[i]
        if not l.strip():
            i += 1
            continue
        if l.startswith("#"):
            i += 1
            continue
        if not re.match(r"(static|typedef|struct|enum)\b", l):
            break
        while i < len(lines):
            depth += lines[i].count("{") - lines[i].count("}")
            i += 1
            if depth == 0 and lines[i - 1].rstrip().endswith(("}", ";")):
                break
    head = lines[:i]
    while head and not head[-1].strip():
        head.pop()
    return head, lines[i:]


def do_c_fragment(block, env):
    d, e = env.workdir(block)
    head, body = split_file_scope(block.lines)
    checks = "".join(
        "#define %s(...) doc_ok_(%s(__VA_ARGS__), \"%s\", __LINE__)\n" % (f, f, f)
        for f in status_functions()) if block.opts.get("checks") != "off" else ""
    prelude = []
    for name in block.opts.get("prelude", "").split():
        if name not in PRELUDES:
            raise Fail("unknown prelude %r (one of %s)" % (name, ", ".join(PRELUDES)))
        prelude.append(PRELUDES[name])
    src = ("#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
           "#include <lora.h>\n"
           "/* every liblora call that returns a status must succeed */\n"
           "static inline lora_status doc_ok_(lora_status st, const char *call, int line)\n{\n"
           "    if (st != LORA_OK) {\n"
           "        fprintf(stderr, \"line %d: %s: %s: %s\\n\", line, call,\n"
           "                lora_status_string(st), lora_last_error());\n"
           "        exit(1);\n    }\n    return st;\n}\n" + checks +
           "#line %d \"%s\"\n" % (block.line + 1, block.path) +
           "".join(l + "\n" for l in head) +
           "int main(void)\n{\n#line 1 \"prelude\"\n" +
           "\n".join(prelude) + "\n" + block.opts.get("decl", "") + "\n" +
           "#line %d \"%s\"\n" % (block.line + 1 + len(block.lines) - len(body), block.path) +
           "".join(l + "\n" for l in body) + "    return 0;\n}\n")
    compile_c(src, d, e, ["-Wno-unused-variable", "-Wno-unused-but-set-variable"])
    if "compile-only" in block.opts:
        return "compiled only: " + block.opts["compile-only"]
    run_program(block, d, e)


PY_DRIVER = r'''
import contextlib, io, json, sys, traceback
spec = json.load(open(sys.argv[1], encoding="utf-8"))
ns = {"__name__": "__main__"}
results = []
failed = False
for b in spec:
    missing = []
    for m in b["needs"]:
        try:
            __import__(m)
        except ImportError:
            missing.append(m)
    if missing:
        results.append({"ok": True, "out": "", "err": "",
                        "skip": "needs %s, not installed here" % ", ".join(missing)})
        continue
    if failed:
        results.append({"ok": False, "out": "", "err": "an earlier block of the session failed"})
        continue
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            if b["pre"]:
                exec(compile(b["pre"], "pre", "exec"), ns)
            exec(compile("\n" * b["line"] + b["code"], b["path"], "exec"), ns)
        results.append({"ok": True, "out": out.getvalue(), "err": ""})
    except BaseException:
        failed = True
        results.append({"ok": False, "out": out.getvalue(), "err": traceback.format_exc()})
json.dump(results, open(sys.argv[2], "w", encoding="utf-8"))
'''


def do_python_session(blocks, env):
    """Runs python blocks of one session in one interpreter; returns per-block results."""
    d, e = env.workdir(blocks[0])
    spec = [{"path": b.path, "line": b.line, "code": b.text, "pre": b.opts.get("pre", ""),
             "needs": b.opts.get("needs", "").split()} for b in blocks]
    with open(os.path.join(d, "spec.json"), "w", encoding="utf-8") as f:
        json.dump(spec, f)
    with open(os.path.join(d, "driver.py"), "w", encoding="utf-8") as f:
        f.write(PY_DRIVER)
    rc, out = run([sys.executable, "driver.py", "spec.json", "results.json"], d, e)
    try:
        with open(os.path.join(d, "results.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return [{"ok": False, "out": "", "err": "driver died (exit %d): %s" % (rc, tail(out))}
                for _ in blocks]


def parse_sh(lines):
    """Steps (command, expected output lines) of a '$ ' block."""
    steps, i = [], 0
    while i < len(lines):
        l = lines[i]
        if l.startswith("$ "):
            cmd = l[2:]
            while cmd.endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd = cmd + "\n" + lines[i]
            steps.append([cmd, []])
        elif steps:
            steps[-1][1].append(l)
        else:
            raise Fail("output line before the first '$ ' command: %r" % l)
        i += 1
    return steps


def do_sh(block, env):
    d, e = env.workdir(block)
    if not any(l.startswith("$ ") for l in block.lines):
        rc, out = run(block.text, d, e, shell=True)
        if rc != 0:
            raise Fail("exit %d:\n%s" % (rc, tail(out)))
        check_expect(block, out)
        block.stdout = out
        return
    mask = block.opts.get("mask")
    for cmd, expected in parse_sh(block.lines):
        rc, out = run(cmd, d, e, shell=True)
        want = int(block.opts.get("exit", "0"))
        if rc != want:
            raise Fail("`%s` exited %d (expected %d):\n%s" % (cmd, rc, want, tail(out)))
        diff = match_output(expected, out.split("\n")[:-1] if out.endswith("\n")
                            else out.split("\n") if out else [], mask)
        if diff:
            raise Fail("`%s`: %s" % (cmd, diff))


def json_equal(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return a == b


def do_json(block, env):
    try:
        shown = json.loads(block.text)
    except ValueError as ex:
        raise Fail("not valid JSON: %s" % ex)
    if "cmd" not in block.opts:
        return
    d, e = env.workdir(block)
    rc, out = run(block.opts["cmd"], d, e, shell=True)
    if rc != 0:
        raise Fail("cmd exited %d:\n%s" % (rc, tail(out)))
    try:
        real = json.loads(out)
    except ValueError as ex:
        raise Fail("cmd printed no JSON (%s):\n%s" % (ex, tail(out)))
    for key in block.opts.get("key", "").split():
        real = real[key]
    if not json_equal(shown, real):
        raise Fail("the block differs from what `%s` gives:\n%s" %
                   (block.opts["cmd"], tail(json.dumps(real, indent=1), 1500)))


def do_usage(block, env):
    d, e = env.workdir(block)
    rc, out = run(block.opts["cmd"], d, e, shell=True)
    if rc != 0:
        raise Fail("`%s` exited %d" % (block.opts["cmd"], rc))
    usage = []
    for l in out.split("\n"):
        if not l.strip():
            break
        usage.append(l)
    # "usage: lora x ..." / "       lora x ..." -> the synopsis lines, indentation kept relative
    strip = len("usage: ")
    want = [usage[0][strip:]] + [l[strip:] if l.startswith(" " * strip) else l for l in usage[1:]]
    if [l.rstrip() for l in block.lines] != [l.rstrip() for l in want]:
        raise Fail("the synopsis differs from `%s`:\n%s" % (block.opts["cmd"], "\n".join(want)))


def do_paths(block, env):
    """A file layout: each line is NAMES, two or more spaces, a description. NAMES (comma
    separated, globs allowed) are repository paths; an indented one (by less than 4 spaces) is
    inside the folder named by the last unindented line ending in '/'; lines indented by 4 or
    more continue a description."""
    import glob
    folder, missing = "", []
    for l in block.lines:
        if not l.strip() or l.startswith("    "):
            continue
        names = re.split(r"\s{2,}", l.strip())[0]
        for word in names.split(", "):
            if not l.startswith(" "):
                folder = word if word.endswith("/") else ""
                path = word
            else:
                path = folder + word
            if not glob.glob(os.path.join(ROOT, path)):
                missing.append(path)
    if missing:
        raise Fail("no such path: " + ", ".join(missing))


def do_copy(block, env):
    path = os.path.join(ROOT, block.opts["path"])
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except OSError as ex:
        raise Fail("cannot read %s: %s" % (block.opts["path"], ex))
    if lines and lines[-1] == "":
        lines.pop()
    if "lines" in block.opts:
        a, b = (int(x) for x in block.opts["lines"].split("-"))
        lines = lines[a - 1:b]
    if lines != block.lines:
        for k, (x, y) in enumerate(zip(block.lines, lines)):
            if x != y:
                raise Fail("differs from %s at its line %d: %r vs %r" %
                           (block.opts["path"], k + 1, x, y))
        raise Fail("block has %d lines, %s %d" % (len(block.lines), block.opts["path"],
                                                  len(lines)))


def do_output(block, prev):
    if prev is None or prev.stdout is None:
        raise Fail("an output block must follow a block that ran (c, c-fragment, python, sh)")
    out = prev.stdout
    diff = match_output(block.lines, out.split("\n")[:-1] if out.endswith("\n")
                        else out.split("\n"), block.opts.get("mask"))
    if diff:
        raise Fail("not the output of %s: %s" % (prev.where, diff))


# --- checks of the documentation as a whole ------------------------------------------------------
def check_api_index():
    """docs/api.md's function index names exactly the LORA_API functions of include/lora.h."""
    text = open(os.path.join(ROOT, "docs", "api.md"), encoding="utf-8").read()
    m = re.search(r"<!-- api-index: begin -->(.*?)<!-- api-index: end -->", text, re.S)
    if not m:
        return ("docs/api.md has no <!-- api-index: begin --> ... <!-- api-index: end --> "
                "section", 0)
    listed = []
    for line in m.group(1).split("\n"):
        n = re.match(r"\s*[-*|]\s*`(lora_[a-z0-9_]+)", line)
        if n:
            listed.append(n.group(1))
    dup = sorted({x for x in listed if listed.count(x) > 1})
    header = api_functions()
    missing = sorted(header - set(listed))
    extra = sorted(set(listed) - header)
    msg = []
    if missing:
        msg.append("declared in include/lora.h but not in the index: " + ", ".join(missing))
    if extra:
        msg.append("in the index but not declared with LORA_API: " + ", ".join(extra))
    if dup:
        msg.append("listed twice: " + ", ".join(dup))
    return "; ".join(msg) or None, len(header)


def check_links(files):
    """Every relative link of the docs names an existing file; README links every page."""
    bad = []
    for path in files:
        text = open(os.path.join(ROOT, path), encoding="utf-8").read()
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            f = target.split("#")[0]
            if not os.path.exists(os.path.join(ROOT, os.path.dirname(path), f)):
                bad.append("%s: %s" % (path, target))
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    for page in sorted(os.listdir(os.path.join(ROOT, "docs"))):
        if page.endswith(".md") and "(docs/%s)" % page not in readme:
            bad.append("README.md does not link docs/%s" % page)
    return "; ".join(bad) or None


def main():
    result, files = sys.argv[1], sys.argv[2:]
    passed = failed = skipped = texts = 0
    kinds = {}

    def ok(where, what, note=""):
        nonlocal passed
        passed += 1
        print("ok - %s %s%s" % (where, what, " (%s)" % note if note else ""), flush=True)

    def bad(where, what, why):
        nonlocal failed
        failed += 1
        print("FAIL - %s %s: %s" % (where, what, why))

    env = Env()
    try:
        for path in files:
            blocks, strays = parse(path)
            for line, why in strays:
                bad("%s:%d" % (path, line), "block", why)
            sessions = {}
            for b in blocks:
                if b.kind == "python":
                    sessions.setdefault(b.opts.get("session", b.where), []).append(b)
            py = {}
            prev = None
            for b in blocks:
                kinds[b.kind or "unclassified"] = kinds.get(b.kind or "unclassified", 0) + 1
                if b.error:
                    bad(b.where, b.kind or "block", b.error)
                    prev = b
                    continue
                try:
                    note = None
                    if b.kind == "text":
                        texts += 1
                        print("-- %s text" % b.where)
                        prev = b
                        continue
                    if b.kind == "skip":
                        if not b.opts.get("reason"):
                            raise Fail("skip needs reason=\"...\"")
                        skipped += 1
                        print("skipped - %s: %s" % (b.where, b.opts["reason"]))
                        prev = b
                        continue
                    if b.kind == "c":
                        do_c(b, env)
                    elif b.kind == "c-fragment":
                        note = do_c_fragment(b, env)
                    elif b.kind == "python":
                        key = b.opts.get("session", b.where)
                        if (key, b.line) not in py:
                            group = sessions[key]
                            py.update({(key, g.line): r for g, r in
                                       zip(group, do_python_session(group, env))})
                        r = py[(key, b.line)]
                        if r.get("skip"):
                            skipped += 1
                            b.skip = r["skip"]
                            print("skipped - %s: %s" % (b.where, r["skip"]))
                            prev = b
                            continue
                        b.stdout = r["out"]
                        if not r["ok"]:
                            raise Fail(tail(r["err"], 1500))
                        check_expect(b, r["out"])
                    elif b.kind == "sh":
                        do_sh(b, env)
                    elif b.kind == "json":
                        do_json(b, env)
                    elif b.kind == "usage":
                        do_usage(b, env)
                    elif b.kind == "paths":
                        do_paths(b, env)
                    elif b.kind == "copy-of":
                        do_copy(b, env)
                    elif b.kind == "output" and getattr(prev, "skip", None):
                        skipped += 1
                        print("skipped - %s: the block before was (%s)" % (b.where, prev.skip))
                        prev = b
                        continue
                    elif b.kind == "output":
                        do_output(b, prev)
                    ok(b.where, b.kind, note)
                except (Fail, RuntimeError) as ex:
                    bad(b.where, b.kind, str(ex))
                prev = b
        msg, n = check_api_index()
        if msg:
            bad("docs/api.md", "index", msg)
        else:
            ok("docs/api.md", "index", "lists the %d functions of include/lora.h" % n)
        msg = check_links(files)
        if msg:
            bad("links", "", msg)
        else:
            ok("links", "", "every relative link resolves; README links every page")
    finally:
        env.close()
    print("docs: %s" % ", ".join("%d %s" % (v, k) for k, v in sorted(kinds.items())))
    with open(result, "w") as f:
        f.write("%d %d %d\n" % (passed, failed, skipped))
    print("docs: %d passed, %d failed, %d skipped (%d text blocks not run)"
          % (passed, failed, skipped, texts))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
