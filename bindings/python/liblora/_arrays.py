"""Turning Python sequences, buffers and numpy arrays into the int32/float32 arrays the C API
takes, and C results back into nested lists or numpy arrays.

The rule for results: a function with an `as_numpy` parameter returns a numpy array when
as_numpy is True, nested lists when it is False, and, when it is None (the default), a numpy
array exactly when its main array argument was a numpy array.
"""

import array
import ctypes
import json
import numbers
import sys
from ctypes import POINTER, c_float, c_int32

_NATIVE_PREFIXES = ("@", "=", "<" if sys.byteorder == "little" else ">")
_numpy = None
_numpy_checked = False


def numpy():
    """The numpy module, or None when it is not installed (it is never required)."""
    global _numpy, _numpy_checked
    if not _numpy_checked:
        try:
            import numpy as np
        except ImportError:
            np = None
        _numpy, _numpy_checked = np, True
    return _numpy


def is_numpy(x):
    np = numpy()
    return np is not None and isinstance(x, np.ndarray)


def want_numpy(as_numpy, *inputs):
    if as_numpy is None:
        return any(is_numpy(x) for x in inputs)
    if as_numpy and numpy() is None:
        raise ImportError("as_numpy=True needs numpy, which is not installed")
    return bool(as_numpy)


def config_json(options, what):
    """Keyword arguments as the JSON object of a C config parameter; None when there are none."""
    if not options:
        return None
    try:
        return json.dumps(options, default=_json_default).encode("utf-8")
    except TypeError as e:
        raise TypeError("%s: option %s" % (what, e)) from None


def _json_default(o):
    if hasattr(o, "tolist"):  # numpy scalars and arrays
        return o.tolist()
    if isinstance(o, (tuple, set, frozenset, range)):
        return list(o)
    raise TypeError("value %r of type %s is not JSON" % (o, type(o).__name__))


def _buffer_values(x, code, what):
    """A memoryview's values in C order as array.array(code), or None if x is no buffer."""
    try:
        mv = memoryview(x)
    except TypeError:
        return None, None
    fmt = mv.format
    if fmt[:1] in _NATIVE_PREFIXES:
        fmt = fmt[1:]
    shape = tuple(mv.shape) if mv.ndim else (1,)
    out = array.array(code)
    if fmt == code and mv.itemsize == out.itemsize:
        out.frombytes(mv.tobytes())
    else:
        values = mv.tolist()
        for _ in range(mv.ndim - 1):
            values = [v for row in values for v in row]
        if mv.ndim == 0:
            values = [values]
        _extend(out, values, code, what)
    return out, shape


def _extend(out, values, code, what):
    try:
        out.extend(values)
    except TypeError:
        if code == "i":
            bad = next((v for v in values if not isinstance(v, numbers.Integral)), None)
            raise TypeError("%s: token ids must be integers, got %r" % (what, bad)) from None
        raise
    except OverflowError:
        raise OverflowError("%s: a value does not fit in int32" % what) from None


def _is_scalar(v):
    return isinstance(v, (numbers.Number, str)) or (
        is_numpy(v) and v.ndim == 0) or not hasattr(v, "__iter__")


class Ints:
    """A (rows, cols) int32 matrix for a C call. `lengths` holds each row's length when the
    input rows were ragged (then padded on the right with `pad`), else None."""

    def __init__(self, x, what, pad=0, ndim=2):
        self.numpy = is_numpy(x)
        self.lengths = None
        if self.numpy:
            np = numpy()
            a = np.asarray(x)
            if a.dtype.kind not in "iub":
                raise TypeError("%s: token ids must be integers, got dtype %s" % (what, a.dtype))
            if a.dtype != np.int32:
                if a.size and (a.min() < -2**31 or a.max() >= 2**31):
                    raise OverflowError("%s: a value does not fit in int32" % what)
            a = np.ascontiguousarray(a, dtype=np.int32)
            if a.ndim == 1 or (ndim == 1 and a.ndim == 0):
                a = a.reshape(1, -1)
            if a.ndim != 2 or (ndim == 1 and a.shape[0] != 1):
                raise ValueError("%s: expected a %d-D array, got shape %s"
                                 % (what, ndim, a.shape))
            self._keep = a
            self.rows, self.cols = a.shape
            self.ptr = a.ctypes.data_as(POINTER(c_int32))
            return
        flat, shape = _buffer_values(x, "i", what)
        if flat is not None:
            if len(shape) > 2 or (ndim == 1 and len(shape) != 1):
                raise ValueError("%s: expected a %d-D buffer, got shape %s" % (what, ndim, shape))
            rows, cols = (1, shape[0]) if len(shape) == 1 else shape
        else:
            seq = list(x)
            if ndim == 1 or not seq or _is_scalar(seq[0]):
                seq = [seq]
            parts = [_row(r, what) for r in seq]
            rows, cols = len(parts), max(len(r) for r in parts)
            if any(len(r) != cols for r in parts):
                self.lengths = [len(r) for r in parts]
                for r in parts:
                    r.extend([pad] * (cols - len(r)))
            flat = array.array("i")
            for r in parts:
                flat.extend(r)
        self.rows, self.cols = rows, cols
        self._keep = flat
        self.ptr = (c_int32 * len(flat)).from_buffer(flat) if len(flat) else None

    @property
    def shape(self):
        return (self.rows, self.cols)

    def lengths_ptr(self):
        return None if self.lengths is None else (c_int32 * self.rows)(*self.lengths)

    def require_nonempty(self, what):
        if self.rows == 0 or self.cols == 0:
            raise ValueError("%s: empty input" % what)


def _row(r, what):
    out, shape = _buffer_values(r, "i", what)
    if out is not None:
        if len(shape) != 1:
            raise ValueError("%s: a row must be 1-D, got shape %s" % (what, shape))
        return out
    if is_numpy(r):
        return array.array("i", Ints(r, what, ndim=1)._keep.ravel().tolist())
    out = array.array("i")
    _extend(out, list(r), "i", what)
    return out


class Floats:
    """A float32 array of any rank for a C call, with its shape."""

    def __init__(self, x, what):
        self.numpy = is_numpy(x)
        if self.numpy:
            np = numpy()
            a = np.asarray(x)
            if a.dtype.kind not in "fiub":
                raise TypeError("%s: expected numbers, got dtype %s" % (what, a.dtype))
            a = np.ascontiguousarray(a, dtype=np.float32)
            self._keep, self.shape = a, tuple(a.shape)
            self.ptr = a.ctypes.data_as(POINTER(c_float))
            return
        flat, shape = _buffer_values(x, "f", what)
        if flat is None:
            seq = list(x)
            if seq and not _is_scalar(seq[0]):
                rows = [_float_row(r, what) for r in seq]
                if any(len(r) != len(rows[0]) for r in rows):
                    raise ValueError("%s: rows of different lengths" % what)
                shape = (len(rows), len(rows[0]))
                flat = array.array("f")
                for r in rows:
                    flat.extend(r)
            else:
                flat, shape = array.array("f", seq), (len(seq),)
        self._keep, self.shape = flat, shape
        self.ptr = (c_float * len(flat)).from_buffer(flat) if len(flat) else None

    @property
    def size(self):
        n = 1
        for d in self.shape:
            n *= d
        return n


def _float_row(r, what):
    out, shape = _buffer_values(r, "f", what)
    if out is not None:
        return out
    if is_numpy(r):
        return array.array("f", [float(v) for v in r.ravel()])
    return array.array("f", r)


class Out:
    """An output array of a C call: numpy when asked, else a ctypes buffer read back as nested
    lists."""

    def __init__(self, shape, code, as_numpy):
        self.shape, self.code = tuple(shape), code
        n = 1
        for d in self.shape:
            n *= d
        self.n = n
        ctype = c_float if code == "f" else c_int32
        if as_numpy:
            np = numpy()
            self._a = np.zeros(self.shape, dtype=np.float32 if code == "f" else np.int32)
            self.ptr = self._a.ctypes.data_as(POINTER(ctype))
        else:
            self._a = None
            self._buf = (ctype * max(n, 1))()
            self.ptr = ctypes.cast(self._buf, POINTER(ctype))

    def result(self, shape=None):
        """The values, as the shape given (default: the allocated one; a prefix is allowed)."""
        shape = self.shape if shape is None else tuple(shape)
        n = 1
        for d in shape:
            n *= d
        if self._a is not None:
            return self._a.reshape(-1)[:n].reshape(shape).copy() if shape != self.shape else self._a
        mv = memoryview(self._buf).cast("B")[:n * 4]
        if n == 0:
            return _empty(shape)
        return mv.cast(self.code, shape).tolist() if len(shape) > 1 else mv.cast(self.code).tolist()


def _empty(shape):
    if len(shape) == 1 or shape[0] == 0:
        return []
    return [_empty(shape[1:]) for _ in range(shape[0])]
