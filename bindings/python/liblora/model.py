"""Model: an immutable base checkpoint, shareable by threads."""

import json
import os
from ctypes import byref, c_float, c_void_p

from ._arrays import Ints, config_json
from ._handle import Handle
from ._lib import ModelP, TokenizerP, check, lib, take_string


def fspath(path):
    """A path as the bytes the C library opens."""
    return os.fsencode(os.fspath(path))


class Model(Handle):
    """A Hugging Face checkpoint folder loaded by lora_model_load.

    Options are keyword arguments: device ("cpu", "auto", "cuda", "cuda:N") and threads.

    >>> m = Model("tests/fixtures/tiny-qwen2", threads=2)
    >>> m.vocab_size
    384
    """

    _free_name = "lora_model_free"

    def __init__(self, path, **options):
        out = ModelP()
        check(lib.lora_model_load(fspath(path), config_json(options, "Model"), byref(out)))
        self._own(lib, out)
        self.path = os.fspath(path)

    @classmethod
    def load(cls, path, **options):
        """Same as Model(path, **options)."""
        return cls(path, **options)

    def info(self):
        """lora_model_info_json as a dict (model_type, vocab_size, hidden_size, ...)."""
        return json.loads(lib.lora_model_info_json(self._h("Model.info")).decode("utf-8"))

    @property
    def vocab_size(self):
        return lib.lora_model_vocab_size(self._h("Model.vocab_size"))

    @property
    def num_parameters(self):
        return lib.lora_model_num_parameters(self._h("Model.num_parameters"))

    @staticmethod
    def describe(path):
        """A checkpoint folder's (or config.json's) description, without loading weights."""
        out = c_void_p()
        check(lib.lora_model_describe(fspath(path), byref(out)))
        return json.loads(take_string(out))

    @staticmethod
    def init_checkpoint(config, out_dir, seed=0, dtype=None):
        """Writes a randomly initialised checkpoint folder from a config.json given as a dict,
        a JSON string, or the path of a config.json file."""
        if isinstance(config, dict):
            text = json.dumps(config)
        elif isinstance(config, str) and config.lstrip().startswith("{"):
            text = config
        else:
            with open(config, encoding="utf-8") as f:
                text = f.read()
        check(lib.lora_model_init_checkpoint(text.encode("utf-8"), fspath(out_dir), seed,
                                             None if dtype is None else dtype.encode("ascii")))

    def session(self, **options):
        """A new Session over this model; see Session for the options."""
        from .session import Session
        return Session(self, **options)

    def tokenizer(self):
        """The Tokenizer of the model's folder (lora_model_tokenizer)."""
        from .tokenizer import Tokenizer
        out = TokenizerP()
        check(lib.lora_model_tokenizer(self._h("Model.tokenizer"), byref(out)))
        return Tokenizer._wrap(out)

    def merge(self, adapter, scale=1.0, probe=None):
        """Folds an adapter into the weights (W += scale * scaling * B A). With a probe (token
        ids) returns the largest logit change between merged and unmerged-attached; else 0."""
        p = Ints(probe, "Model.merge probe", ndim=1) if probe is not None else None
        change = c_float(0.0)
        check(lib.lora_model_merge(self._h("Model.merge"), adapter._h("Model.merge adapter"),
                                   scale, p.ptr if p else None, p.cols if p else 0,
                                   byref(change)))
        return change.value

    def unmerge(self):
        """Restores the weights a merge changed, bit for bit."""
        check(lib.lora_model_unmerge(self._h("Model.unmerge")))

    def save(self, path, dtype=None):
        """Writes the current weights (merged ones included) as a Hugging Face folder."""
        check(lib.lora_model_save(self._h("Model.save"), fspath(path),
                                  None if dtype is None else dtype.encode("ascii")))
