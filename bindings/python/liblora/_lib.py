"""Finding and loading liblora.so, and the prototype of every C function the bindings call.

Search order: $LIBLORA_PATH (the library file, or a folder holding liblora.so.<ABI>; when set,
nothing else is tried); the build tree when the package is run from the repository
(<repo>/lib/liblora.so.<ABI>); the system loader (LD_LIBRARY_PATH, the ldconfig cache, then
ctypes.util.find_library("lora")); finally <sys.prefix>/lib and /usr/local/lib, where
`make install PREFIX=...` puts it.
"""

import ctypes
import ctypes.util
import os
import sys
from ctypes import (CFUNCTYPE, POINTER, c_char_p, c_double, c_float, c_int, c_int32, c_size_t,
                    c_ubyte, c_uint, c_uint64, c_void_p)

from ._errors import LoraStateError, LoraUnsupportedError, error_for

ABI_VERSION = 0
SONAME = "liblora.so.%d" % ABI_VERSION


class _Opaque(ctypes.Structure):
    pass


def _handle_type(name):
    return POINTER(type(name, (_Opaque,), {}))


ModelP = _handle_type("lora_model")
SessionP = _handle_type("lora_session")
SamplerP = _handle_type("lora_sampler")
AdapterP = _handle_type("lora_adapter")
OptimizerP = _handle_type("lora_optimizer")
TokenizerP = _handle_type("lora_tokenizer")
DetokenizerP = _handle_type("lora_detokenizer")
DatasetP = _handle_type("lora_dataset")

TOKEN_CB = CFUNCTYPE(c_int, c_int32, c_void_p)

_i32p = POINTER(c_int32)
_f32p = POINTER(c_float)
_szp = POINTER(c_size_t)
_strp = POINTER(c_void_p)  # char ** of strings the caller frees, read with ctypes.string_at
status = c_int

# name: (restype, argtypes), in the order of include/lora.h.
PROTOTYPES = {
    "lora_version_major": (c_int, []),
    "lora_version_minor": (c_int, []),
    "lora_version_patch": (c_int, []),
    "lora_version_string": (c_char_p, []),
    "lora_abi_version": (c_int, []),
    "lora_status_string": (c_char_p, [status]),
    "lora_last_error": (c_char_p, []),
    "lora_string_free": (None, [c_void_p]),

    "lora_model_load": (status, [c_char_p, c_char_p, POINTER(ModelP)]),
    "lora_model_free": (None, [ModelP]),
    "lora_model_info_json": (c_char_p, [ModelP]),
    "lora_model_vocab_size": (c_size_t, [ModelP]),
    "lora_model_num_parameters": (c_uint64, [ModelP]),
    "lora_model_describe": (status, [c_char_p, _strp]),
    "lora_device_memory": (status, [c_char_p, POINTER(c_uint64), POINTER(c_uint64), c_int]),
    "lora_model_init_checkpoint": (status, [c_char_p, c_char_p, c_uint64, c_char_p]),

    "lora_session_create": (status, [ModelP, c_char_p, POINTER(SessionP)]),
    "lora_session_free": (None, [SessionP]),
    "lora_session_logits": (status, [SessionP, _i32p, _i32p, c_size_t, c_size_t, _f32p]),
    "lora_session_logprobs": (status, [SessionP, _i32p, _i32p, c_size_t, c_size_t, _f32p]),
    "lora_session_loss": (status, [SessionP, _i32p, _i32p, c_size_t, c_size_t, _f32p, _szp]),
    "lora_session_append": (status, [SessionP, _i32p, c_size_t, _f32p]),
    "lora_session_position": (c_size_t, [SessionP]),
    "lora_session_reset": (None, [SessionP]),

    "lora_adapter_create": (status, [ModelP, c_char_p, c_uint64, POINTER(AdapterP)]),
    "lora_adapter_load": (status, [ModelP, c_char_p, POINTER(AdapterP)]),
    "lora_adapter_save": (status, [AdapterP, c_char_p]),
    "lora_adapter_free": (None, [AdapterP]),
    "lora_adapter_info_json": (c_char_p, [AdapterP]),
    "lora_model_merge": (status, [ModelP, AdapterP, c_float, _i32p, c_size_t, _f32p]),
    "lora_model_unmerge": (status, [ModelP]),
    "lora_model_save": (status, [ModelP, c_char_p, c_char_p]),
    "lora_session_set_adapters": (status, [SessionP, POINTER(AdapterP), _f32p, c_size_t]),

    "lora_optimizer_create": (status, [SessionP, c_char_p, POINTER(OptimizerP)]),
    "lora_optimizer_free": (None, [OptimizerP]),
    "lora_train_step": (status, [OptimizerP, _i32p, _i32p, c_size_t, c_size_t, _f32p]),
    "lora_train_step_packed": (status, [OptimizerP, _i32p, _i32p, _i32p, c_size_t, c_size_t,
                                        _f32p]),
    "lora_optimizer_save_checkpoint": (status, [OptimizerP, c_char_p, c_uint64]),
    "lora_optimizer_load_checkpoint": (status, [OptimizerP, c_char_p, POINTER(c_uint64)]),
    "lora_optimizer_set_lr": (status, [OptimizerP, c_double]),
    "lora_optimizer_stats_json": (c_char_p, [OptimizerP]),

    "lora_sampler_create": (status, [c_char_p, POINTER(SamplerP)]),
    "lora_sampler_free": (None, [SamplerP]),
    "lora_sampler_set_temperature": (status, [SamplerP, c_float]),
    "lora_sampler_set_seed": (status, [SamplerP, c_uint64]),
    "lora_sampler_sample": (status, [SamplerP, _f32p, c_size_t, _i32p, c_size_t, c_size_t,
                                     _i32p]),
    "lora_generate": (status, [SessionP, SamplerP, _i32p, c_size_t, _i32p, c_size_t, _szp,
                               TOKEN_CB, c_void_p]),

    "lora_tokenizer_load": (status, [c_char_p, c_char_p, POINTER(TokenizerP)]),
    "lora_model_tokenizer": (status, [ModelP, POINTER(TokenizerP)]),
    "lora_tokenizer_free": (None, [TokenizerP]),
    "lora_tokenizer_vocab_size": (c_size_t, [TokenizerP]),
    "lora_tokenizer_info_json": (c_char_p, [TokenizerP]),
    "lora_tokenizer_encode": (status, [TokenizerP, c_char_p, c_size_t, c_uint, _i32p, c_size_t,
                                       _szp]),
    "lora_tokenizer_decode": (status, [TokenizerP, _i32p, c_size_t, c_uint, _strp, _szp]),
    "lora_tokenizer_token_id": (status, [TokenizerP, c_char_p, _i32p]),
    "lora_detokenizer_create": (status, [TokenizerP, c_uint, POINTER(DetokenizerP)]),
    "lora_detokenizer_push": (status, [DetokenizerP, c_int32, _strp, _szp]),
    "lora_detokenizer_flush": (status, [DetokenizerP, _strp, _szp]),
    "lora_detokenizer_free": (None, [DetokenizerP]),

    "lora_chat_render": (status, [TokenizerP, c_char_p, c_char_p, _strp]),
    "lora_prompt_few_shot": (status, [TokenizerP, c_char_p, c_char_p, c_char_p, _strp]),

    "lora_dataset_load": (status, [TokenizerP, c_char_p, c_char_p, POINTER(DatasetP)]),
    "lora_dataset_split": (status, [DatasetP, c_double, c_uint64, POINTER(DatasetP),
                                    POINTER(DatasetP)]),
    "lora_dataset_free": (None, [DatasetP]),
    "lora_dataset_size": (c_size_t, [DatasetP]),
    "lora_dataset_stats_json": (c_char_p, [DatasetP]),
    "lora_dataset_row": (status, [DatasetP, c_size_t, _i32p, _i32p, _i32p, c_size_t, _szp]),
    "lora_dataset_next_batch": (status, [DatasetP, c_size_t, _i32p, _i32p, _i32p, c_size_t,
                                         _szp, _szp]),
    "lora_dataset_position": (c_uint64, [DatasetP]),
    "lora_dataset_seek": (status, [DatasetP, c_uint64]),

    "lora_answer_extract": (status, [c_char_p, c_size_t, _strp]),
    "lora_answer_normalize": (status, [c_char_p, _strp]),
    "lora_answer_match": (status, [c_char_p, c_char_p, POINTER(c_int)]),
    "lora_pass_at_k": (status, [c_size_t, c_size_t, c_size_t, POINTER(c_double)]),
    "lora_pass_at_k_table": (status, [POINTER(c_ubyte), c_size_t, c_size_t, _strp, _strp]),
    "lora_forecast_metrics": (status, [_f32p, _f32p, c_size_t, POINTER(c_double),
                                       POINTER(c_double), POINTER(c_double)]),
    "lora_flops_json": (status, [ModelP, c_char_p, c_char_p, c_size_t, c_size_t, _strp]),
    "lora_mfu": (status, [c_double, c_double, c_double, POINTER(c_double), POINTER(c_double)]),

    "lora_llmtime_encode": (status, [_f32p, c_size_t, c_size_t, c_char_p, _strp,
                                     POINTER(c_double)]),
    "lora_llmtime_decode": (status, [c_char_p, c_size_t, c_double, c_size_t, _f32p, c_size_t,
                                     _szp]),
}

# Without these the bindings cannot work at all; the rest may be missing from older builds.
_REQUIRED = ("lora_abi_version", "lora_last_error", "lora_status_string", "lora_string_free")


class Library:
    """The loaded library: one attribute per C function, with argtypes and restype set.

    A function declared in lora.h but missing from the loaded build raises
    LoraUnsupportedError when used; has() tells beforehand.
    """

    def __init__(self, cdll, path):
        self.cdll = cdll
        self.path = path
        for name, (restype, argtypes) in PROTOTYPES.items():
            fn = getattr(cdll, name, None)
            if fn is None:
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)

    def has(self, name):
        return name in self.__dict__

    def __getattr__(self, name):
        if name in PROTOTYPES:
            raise LoraUnsupportedError("%s: not implemented in this build of liblora (%s)"
                                       % (name, self.path))
        raise AttributeError(name)


def _candidates():
    env = os.environ.get("LIBLORA_PATH")
    if env:
        # An explicit choice is never silently replaced by another library.
        return [os.path.join(env, SONAME) if os.path.isdir(env) else env], True
    repo = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                         os.pardir, os.pardir, os.pardir))
    found = []
    if os.path.exists(os.path.join(repo, "include", "lora.h")):  # run from the repository
        found.append(os.path.join(repo, "lib", SONAME))
    found.append(SONAME)
    name = ctypes.util.find_library("lora")
    if name:
        found.append(name)
    for prefix in (sys.prefix, "/usr/local"):
        found.append(os.path.join(prefix, "lib", SONAME))
    return found, False


def _load():
    paths, explicit = _candidates()
    tried = []
    for path in paths:
        if os.sep in path and not os.path.exists(path):
            tried.append("%s (no such file)" % path)
            continue
        try:
            cdll = ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
            continue
        missing = [n for n in _REQUIRED if not hasattr(cdll, n)]
        if missing:
            tried.append("%s (not liblora: lacks %s)" % (path, ", ".join(missing)))
            continue
        cdll.lora_abi_version.restype = c_int
        cdll.lora_abi_version.argtypes = []
        abi = cdll.lora_abi_version()
        if abi != ABI_VERSION:
            raise ImportError("liblora: %s has ABI version %d; these bindings need %d"
                              % (path, abi, ABI_VERSION))
        return Library(cdll, os.path.normpath(path) if os.sep in path else path)
    hint = ("LIBLORA_PATH=%s is set: it must name %s or a folder holding it"
            % (os.environ.get("LIBLORA_PATH"), SONAME) if explicit else
            "set LIBLORA_PATH to the library file or its folder, or run `make` in the "
            "repository, or `make install`")
    raise ImportError("liblora: cannot load %s; tried: %s. %s"
                      % (SONAME, "; ".join(tried), hint))


lib = _load()


def last_error():
    return lib.lora_last_error().decode("utf-8", "replace")


def status_error(st, message):
    """The exception of a non-zero status with a message read earlier (from another thread)."""
    return error_for(st, message, lib.lora_status_string(st).decode("ascii", "replace"))


def check(st):
    """Raises the exception of a non-zero status, with the calling thread's lora_last_error()."""
    if st != 0:
        raise status_error(st, last_error())


def closed_error(what):
    return LoraStateError("%s: the handle is closed" % what)


def take_string(ptr, length=None):
    """Copies a string liblora allocated for the caller, frees it, returns it as str."""
    if not ptr.value:
        return ""
    try:
        raw = ctypes.string_at(ptr.value) if length is None else ctypes.string_at(ptr.value, length)
    finally:
        lib.lora_string_free(ptr.value)
    return raw.decode("utf-8", "replace")
