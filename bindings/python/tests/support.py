"""Shared by the test modules: imports the in-tree package and names the fixtures.

Run from the repository root: python3 -m unittest discover -s bindings/python/tests -v
"""

import os
import struct
import json
import sys
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import liblora  # noqa: E402  (after the path is set)

QWEN2 = os.path.join(ROOT, "tests", "fixtures", "tiny-qwen2")
QWEN2_ADAPTER = os.path.join(QWEN2, "adapter")
TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "qwen-tokenizer")

try:
    import numpy
except ImportError:
    numpy = None

needs_numpy = unittest.skipIf(numpy is None, "numpy is not installed")


def needs(*functions):
    """Skips a test or class when the loaded build lacks one of the C functions."""
    missing = [f for f in functions if not liblora.has_function(f)]
    return unittest.skipIf(bool(missing), "%s not implemented in this build" % ", ".join(missing))


def needs_path(path):
    return unittest.skipUnless(os.path.exists(path),
                               "%s not present" % os.path.relpath(path, ROOT))


def read_safetensors(path):
    """{name: (dtype, shape, flat list)} of a safetensors file (F64, F32, I64 tensors)."""
    codes = {"F64": "d", "F32": "f", "I64": "q", "I32": "i"}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] not in codes:
            continue
        begin, end = t["data_offsets"]
        code = codes[t["dtype"]]
        count = (end - begin) // struct.calcsize(code)
        out[name] = (t["dtype"], t["shape"], list(struct.unpack("<%d%s" % (count, code),
                                                                data[begin:end])))
    return out


def max_rel_error(got, ref):
    scale = max(abs(r) for r in ref) or 1.0
    return max(abs(g - r) for g, r in zip(got, ref)) / scale


def flatten(x):
    if isinstance(x, (list, tuple)):
        return [v for item in x for v in flatten(item)]
    return [x]
