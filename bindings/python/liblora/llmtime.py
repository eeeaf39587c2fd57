"""LLMTIME: multivariate time series as text and back."""

from ctypes import byref, c_double, c_size_t, c_void_p

from ._arrays import Floats, Out, config_json, want_numpy
from ._lib import check, lib, take_string


def llmtime_encode(values, **options):
    """(steps, dims) values (a 1-D series is one dimension) as LLMTIME text; options alpha,
    target, decimals. Returns (text, alpha): keep alpha to decode."""
    v = Floats(values, "llmtime_encode")
    if len(v.shape) == 1:
        steps, dims = v.shape[0], 1
    elif len(v.shape) == 2:
        steps, dims = v.shape
    else:
        raise ValueError("llmtime_encode: expected 1-D or 2-D values, got shape %s" % (v.shape,))
    text, alpha = c_void_p(), c_double()
    check(lib.lora_llmtime_encode(v.ptr, steps, dims, config_json(options, "llmtime_encode"),
                                  byref(text), byref(alpha)))
    return take_string(text), alpha.value


def llmtime_decode(text, alpha, dims=1, as_numpy=False):
    """The well-formed prefix of LLMTIME text as (steps, dims) values divided by alpha."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    cap = (data.count(b";") + 1) * dims
    out, steps = Out((cap,), "f", want_numpy(as_numpy)), c_size_t()
    check(lib.lora_llmtime_decode(data, len(data), alpha, dims, out.ptr, cap, byref(steps)))
    return out.result((steps.value, dims))
