"""Adapter: a LoRA adapter of one model, in PEFT's format."""

import json
from ctypes import byref

from ._arrays import config_json
from ._handle import Handle
from ._lib import AdapterP, check, lib
from .model import fspath


class Adapter(Handle):
    """A LoRA adapter. Make one with Adapter.create (PEFT LoraConfig keys as keyword arguments)
    or Adapter.load (a PEFT folder); attach it with Session(..., adapters=[(a, 1.0)]) or
    Session.set_adapters.

    >>> a = Adapter.create(m, r=8, lora_alpha=16, target_modules="all-linear", seed=0)
    """

    _free_name = "lora_adapter_free"

    def __init__(self, ptr):
        self._own(lib, ptr)

    @classmethod
    def create(cls, model, seed=0, **lora_config):
        out = AdapterP()
        check(lib.lora_adapter_create(model._h("Adapter.create"),
                                      config_json(lora_config, "Adapter.create"), seed,
                                      byref(out)))
        return cls(out)

    @classmethod
    def load(cls, model, path):
        out = AdapterP()
        check(lib.lora_adapter_load(model._h("Adapter.load"), fspath(path), byref(out)))
        return cls(out)

    def save(self, path):
        """Writes adapter_config.json and adapter_model.safetensors (atomically)."""
        check(lib.lora_adapter_save(self._h("Adapter.save"), fspath(path)))

    def info(self):
        """modules, trainable_parameters, total_parameters, trainable_ratio, r, lora_alpha,
        scaling, target_modules."""
        return json.loads(lib.lora_adapter_info_json(self._h("Adapter.info")).decode("utf-8"))

    def print_trainable_parameters(self):
        """Prints the line PEFT's model.print_trainable_parameters() prints."""
        i = self.info()
        print("trainable params: {:,} || all params: {:,} || trainable%: {:.4f}".format(
            i["trainable_parameters"], i["total_parameters"], i["trainable_ratio"]))
