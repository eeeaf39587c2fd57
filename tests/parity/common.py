"""Shared by the parity scripts: paths, the liblora import, the result table, safetensors I/O.

The oracle (torch, transformers, peft, tokenizers) comes from build/parity-venv; liblora comes
from the build tree through its ctypes bindings (bindings/python), never from the venv.
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
TOKENIZER_DIR = os.path.join(ROOT, "tests", "fixtures", "qwen-tokenizer")
THREADS = 2

import liblora  # noqa: E402  (after the path is set)
import numpy as np  # noqa: E402


class Table:
    """Rows of (group, check, value, tolerance, ok); a failed row makes the run fail."""

    def __init__(self):
        self.rows = []

    def add(self, group, check, value, tol, ok=None, note=""):
        """value <= tol passes unless ok says otherwise; value and tol are floats or text."""
        if ok is None:
            ok = bool(value <= tol)
        self.rows.append((group, check, value, tol, ok, note))
        return ok

    def failed(self):
        return [r for r in self.rows if not r[4]]

    def render(self):
        head = ("group", "check", "measured", "tolerance", "", "note")
        body = [(g, c, _fmt(v), _fmt(t), "ok" if ok else "FAIL", n)
                for g, c, v, t, ok, n in self.rows]
        widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
        line = lambda r: "  ".join(s.ljust(w) for s, w in zip(r, widths)).rstrip()
        return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in body])


def _fmt(v):
    if isinstance(v, float):
        return "0" if v == 0 else "%.2e" % v
    return str(v)


def rel_max(a, b):
    """max |a - b| / max |b|, in float64: the error relative to the reference's scale."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("shapes differ: %s and %s" % (a.shape, b.shape))
    scale = np.abs(b).max() if b.size else 0.0
    err = np.abs(a - b).max() if b.size else 0.0
    return float(err / scale) if scale > 0 else float(err)


def read_tensors(path):
    """A safetensors file as {name: float64 numpy array}."""
    from safetensors.numpy import load_file
    return {k: v.astype(np.float64) for k, v in load_file(path).items()}
