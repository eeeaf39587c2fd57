"""liblora: Python bindings (ctypes) for the liblora C library.

Load a Hugging Face checkpoint, run it, fine-tune it with LoRA and generate:

    import liblora
    m = liblora.Model("tests/fixtures/tiny-qwen2")
    a = liblora.Adapter.load(m, "tests/fixtures/tiny-qwen2/adapter")
    s = m.session(adapters=[(a, 1.0)])
    logits = s.logits([[1, 2, 3]])          # [batch][time][vocab]
    ids = s.generate([1, 2, 3], max_new_tokens=8, do_sample=False)

The shared library is found through $LIBLORA_PATH, the build tree, or the system loader; see
docs/python.md.
"""

from ._errors import (LoraCancelledError, LoraConfigError, LoraDeviceError,
                      LoraDeviceMemoryError, LoraError, LoraFormatError, LoraInternalError,
                      LoraInvalidArgumentError, LoraIOError, LoraMemoryError, LoraNumericError,
                      LoraRangeError, LoraShapeError, LoraStateError, LoraUnsupportedError)
from ._lib import ABI_VERSION, lib as _lib
from .adapter import Adapter
from .dataset import Dataset
from .device import device_memory
from .evaluation import (answers_match, extract_answer, flops, forecast_metrics, mfu,
                         normalize_answer, pass_at_k, pass_at_k_table)
from .llmtime import llmtime_decode, llmtime_encode
from .model import Model
from .optimizer import Optimizer
from .sampler import Sampler
from .session import IGNORE_INDEX, Session
from .tokenizer import Detokenizer, Tokenizer

__version__ = "0.3.0"  # of these bindings; version() is the loaded library's

library_path = _lib.path


def version():
    """The loaded library's version string, e.g. "0.3.0"."""
    return _lib.lora_version_string().decode("ascii")


def version_info():
    """The loaded library's (major, minor, patch)."""
    return (_lib.lora_version_major(), _lib.lora_version_minor(), _lib.lora_version_patch())


def abi_version():
    """The loaded library's ABI version (the SONAME suffix); always ABI_VERSION once imported."""
    return _lib.lora_abi_version()


def has_function(name):
    """Whether the loaded build exports the C function `name` (e.g. "lora_tokenizer_load")."""
    return _lib.has(name)


__all__ = [
    "Model", "Session", "Adapter", "Optimizer", "Sampler", "Tokenizer", "Detokenizer",
    "Dataset", "llmtime_encode", "llmtime_decode", "extract_answer", "normalize_answer",
    "answers_match", "pass_at_k", "pass_at_k_table", "forecast_metrics", "flops", "mfu",
    "device_memory",
    "IGNORE_INDEX", "ABI_VERSION",
    "version", "version_info", "abi_version", "has_function", "library_path",
    "LoraError", "LoraInvalidArgumentError", "LoraMemoryError", "LoraIOError",
    "LoraFormatError", "LoraConfigError", "LoraUnsupportedError", "LoraShapeError",
    "LoraRangeError", "LoraStateError", "LoraNumericError", "LoraDeviceError",
    "LoraDeviceMemoryError", "LoraCancelledError", "LoraInternalError",
]
