"""Evaluation: answer extraction and matching, pass@k, forecast metrics, FLOPs and MFU.

The rules are the C library's (include/lora.h, "Evaluation"; docs/evaluation.md); these
functions convert arguments and results and raise the library's errors as exceptions.
"""

import json
import numbers
import operator
import os
from ctypes import byref, c_double, c_int, c_ubyte, c_void_p

from ._arrays import Floats, is_numpy, numpy
from ._errors import LoraInvalidArgumentError
from ._lib import check, lib, take_string

__all__ = ["extract_answer", "normalize_answer", "answers_match", "pass_at_k",
           "pass_at_k_table", "forecast_metrics", "flops", "mfu"]


def _utf8(s, what, name):
    """A str or bytes argument as the NUL-terminated bytes a C string parameter takes."""
    if isinstance(s, str):
        data = s.encode("utf-8")
    elif isinstance(s, (bytes, bytearray)):
        data = bytes(s)
    else:
        raise TypeError("%s: %s must be str or bytes, got %s" % (what, name, type(s).__name__))
    if b"\0" in data:  # C would read only up to it
        raise ValueError("%s: %s holds a NUL character" % (what, name))
    return data


def extract_answer(text):
    """The final answer in a model's output (or a GSM8K reference solution), normalised as by
    normalize_answer: the last complete \\boxed{...}, else the line after the last "####" if
    it is a number, else the last number. None when the text holds no answer.

    >>> extract_answer("so 50 minutes give \\\\boxed{\\\\$10.00}.")
    '10'
    """
    if isinstance(text, str):
        data = text.encode("utf-8")
    elif isinstance(text, (bytes, bytearray)):
        data = bytes(text)
    else:
        raise TypeError("extract_answer: text must be str or bytes, got %s"
                        % type(text).__name__)
    out = c_void_p()
    check(lib.lora_answer_extract(data, len(data), byref(out)))
    return None if not out.value else take_string(out)


def normalize_answer(answer):
    """An answer in the canonical spelling answers_match compares ("x = \\\\frac{1}{2}" gives
    "1/2", "$1,234.00" gives "1234"); possibly ""."""
    out = c_void_p()
    check(lib.lora_answer_normalize(_utf8(answer, "normalize_answer", "answer"), byref(out)))
    return take_string(out)


def answers_match(predicted, reference):
    """Whether a predicted answer equals the reference once both are normalised: integers by
    their digits, decimals and fractions by value (1e-9 relative), anything else as text.
    predicted may be None (extract_answer found nothing): then False."""
    pred = None if predicted is None else _utf8(predicted, "answers_match", "predicted")
    match = c_int()
    check(lib.lora_answer_match(pred, _utf8(reference, "answers_match", "reference"),
                                byref(match)))
    return bool(match.value)


def _size(v, what, name):
    try:
        i = operator.index(v)
    except TypeError:
        raise TypeError("%s: %s must be an integer, got %s"
                        % (what, name, type(v).__name__)) from None
    if i < 0:  # size_t would wrap it into a huge count
        raise LoraInvalidArgumentError("%s: %s = %d is negative" % (what, name, i))
    return i


def pass_at_k(n, c, k):
    """The unbiased pass@k estimate (Chen et al. 2021) of one question with c correct among n
    rollouts: 1 - C(n-c, k) / C(n, k). Needs 1 <= k <= n and c <= n (else
    LoraInvalidArgumentError)."""
    out = c_double()
    check(lib.lora_pass_at_k(_size(n, "pass_at_k", "n"), _size(c, "pass_at_k", "c"),
                             _size(k, "pass_at_k", "k"), byref(out)))
    return out.value


def _outcome(v, what, q, r):
    np = numpy()
    if isinstance(v, numbers.Integral) or (np is not None and isinstance(v, np.bool_)):
        return 1 if v else 0
    raise TypeError("%s: correct[%d][%d] must be a bool or an integer, got %r"
                    % (what, q, r, v))


def _outcomes(correct, what):
    """(questions, rollouts, bytes) of a rectangular matrix of outcomes; non-zero is correct."""
    if is_numpy(correct):
        np = numpy()
        a = np.asarray(correct)
        if a.dtype.kind not in "biu":
            raise TypeError("%s: outcomes must be bools or integers, got dtype %s"
                            % (what, a.dtype))
        if a.ndim != 2:
            raise ValueError("%s: expected a 2-D (questions, rollouts) array, got shape %s"
                             % (what, a.shape))
        if a.size == 0:
            raise ValueError("%s: no outcomes (shape %s)" % (what, a.shape))
        return a.shape[0], a.shape[1], np.ascontiguousarray(a != 0, dtype=np.uint8).tobytes()
    if isinstance(correct, (str, bytes)):
        raise TypeError("%s: expected a list of per-question lists of outcomes" % what)
    rows = []
    for q, row in enumerate(correct):
        if isinstance(row, (numbers.Number, str, bytes)) or not hasattr(row, "__iter__"):
            raise ValueError("%s: expected a list of per-question lists of outcomes, got %r "
                             "for question %d" % (what, row, q))
        values = row.tolist() if is_numpy(row) else list(row)
        rows.append(bytes(_outcome(v, what, q, r) for r, v in enumerate(values)))
    if not rows or not rows[0]:
        raise ValueError("%s: no outcomes (%d questions)" % (what, len(rows)))
    for q, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise ValueError("%s: question %d has %d rollouts, question 0 has %d: every "
                             "question needs the same number" % (what, q, len(row), len(rows[0])))
    return len(rows), len(rows[0]), b"".join(rows)


def pass_at_k_table(correct, as_text=False):
    """pass@k and avg@k for k = 1..rollouts over questions, from their outcomes: a list of
    per-question lists of bools or integers (non-zero is correct; all of the same length), or
    a 2-D numpy array (questions, rollouts).

    Returns a dict {"questions", "rollouts", "correct", "solved", "table": [{"k",
    "pass_at_k", "avg_at_k"}, ...]}, or with as_text=True the table as text: a header line
    "k  pass@k  avg@k" and one line per k, 4 decimals, right-aligned columns.
    """
    questions, rollouts, data = _outcomes(correct, "pass_at_k_table")
    buf = (c_ubyte * len(data)).from_buffer_copy(data)
    out = c_void_p()
    if as_text:
        check(lib.lora_pass_at_k_table(buf, questions, rollouts, None, byref(out)))
        return take_string(out)
    check(lib.lora_pass_at_k_table(buf, questions, rollouts, byref(out), None))
    return json.loads(take_string(out))


def forecast_metrics(pred, truth):
    """{"mse", "mae", "r2"} of a forecast against the true values. pred and truth are
    sequences, nested lists, buffers or numpy arrays of the same number of values, compared
    flattened in row-major order (pass only the steps the forecast has). R^2 is 1 for a perfect
    forecast of a constant series, else 0 there (scikit-learn's rule). A non-finite value is a
    LoraNumericError naming it."""
    p = Floats(pred, "forecast_metrics pred")
    t = Floats(truth, "forecast_metrics truth")
    if p.size != t.size:
        raise ValueError("forecast_metrics: pred has %d values (shape %s), truth %d (shape %s)"
                         % (p.size, p.shape, t.size, t.shape))
    mse, mae, r2 = c_double(), c_double(), c_double()
    check(lib.lora_forecast_metrics(p.ptr, t.ptr, p.size, byref(mse), byref(mae), byref(r2)))
    return {"mse": mse.value, "mae": mae.value, "r2": r2.value}


def _config_text(config):
    """A config.json given as a dict, its JSON text, or the path of the file or its folder."""
    if isinstance(config, dict):
        return json.dumps(config)
    if isinstance(config, str) and config.lstrip().startswith("{"):
        return config
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        with open(path, encoding="utf-8") as f:
            return f.read()
    raise TypeError("flops: config must be a dict, JSON text or a path, got %s"
                    % type(config).__name__)


def flops(model=None, config=None, lora=None, *, context, batch=1):
    """FLOPs per token and per step, forward and training, counted from the architecture
    (lora_flops_json): give a loaded Model, or config as a dict, the JSON text of a
    config.json, or the path of a config.json or of the folder holding it (not both).

    lora: None for full fine-tuning, or PEFT LoraConfig keys as a dict (or JSON text) for LoRA
    training ({} is PEFT's default adapter). context: tokens per row (1 to
    max_position_embeddings); batch: rows per step.

    Returns the JSON object as a dict: "forward" and "train" hold "per_token" and "per_step",
    with the terms of the sum (see docs/evaluation.md).
    """
    h = None if model is None else model._h("flops")
    text = None if config is None else _config_text(config).encode("utf-8")
    if lora is None:
        lora_text = None
    elif isinstance(lora, dict):
        lora_text = json.dumps(lora).encode("utf-8")
    elif isinstance(lora, str):
        lora_text = lora.encode("utf-8")
    else:
        raise TypeError("flops: lora must be None, a dict of LoraConfig keys or JSON text, "
                        "got %s" % type(lora).__name__)
    out = c_void_p()
    check(lib.lora_flops_json(h, text, lora_text, _size(context, "flops", "context"),
                              _size(batch, "flops", "batch"), byref(out)))
    return json.loads(take_string(out))


def _real(v, name):
    if not isinstance(v, numbers.Real):
        raise TypeError("mfu: %s must be a number, got %s" % (name, type(v).__name__))
    return float(v)


def mfu(flops_per_token, tokens_per_s, peak_flops_per_s):
    """(flops_per_s, mfu) of a run: flops_per_token x tokens_per_s, and that over the
    device's peak FLOP/s (a fraction). E.g. flops(...)["train"]["per_token"], measured
    training tokens per second, and the peak dense FLOP/s of the dtype used."""
    achieved, fraction = c_double(), c_double()
    check(lib.lora_mfu(_real(flops_per_token, "flops_per_token"),
                       _real(tokens_per_s, "tokens_per_s"),
                       _real(peak_flops_per_s, "peak_flops_per_s"), byref(achieved),
                       byref(fraction)))
    return achieved.value, fraction.value
