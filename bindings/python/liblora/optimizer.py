"""Optimizer: trains the adapters attached to a session (or the whole model)."""

import json
from ctypes import byref, c_float, c_uint64

from ._arrays import Ints, config_json
from ._handle import Handle
from ._lib import OptimizerP, check, lib
from .model import fspath
from .session import IGNORE_INDEX, batch_with_labels


class Optimizer(Handle):
    """An optimizer over a session: torch.optim / TrainingArguments names as keywords (train,
    optimizer, lr, betas, eps, weight_decay, lr_scheduler_type, warmup_steps, warmup_ratio,
    num_training_steps, gradient_accumulation_steps, max_grad_norm, loraplus_lr_ratio,
    recompute, seed...). With train="adapters" (the default) it trains the LoRA A and B of the
    adapters attached to the session when it is made.

    >>> opt = Optimizer(s, lr=1e-3, lr_scheduler_type="cosine", num_training_steps=100)
    >>> loss = opt.step([[1, 2, 3, 4]])
    """

    _free_name = "lora_optimizer_free"

    def __init__(self, session, **config):
        out = OptimizerP()
        check(lib.lora_optimizer_create(session._h("Optimizer"),
                                        config_json(config, "Optimizer"), byref(out)))
        self._own(lib, out)

    def step(self, ids, labels=None):
        """One micro-batch (forward, loss, backward; the update every
        gradient_accumulation_steps). Labels default to ids; -100 is not counted; ragged rows
        are padded and the padding not counted. Returns the micro-batch's loss."""
        x, y = batch_with_labels(ids, labels, "Optimizer.step")
        loss = c_float()
        check(lib.lora_train_step(self._h("Optimizer.step"), x.ptr, y.ptr, x.rows, x.cols,
                                  byref(loss)))
        return loss.value

    def step_packed(self, ids, labels, position_ids):
        """A step over packed rows (lora_train_step_packed): a position id of 0 starts a new
        sample that attends only to itself. Dataset.next_batch gives all three."""
        x, y = batch_with_labels(ids, labels, "Optimizer.step_packed")
        pos = Ints(position_ids, "Optimizer.step_packed position_ids")
        if pos.shape != x.shape or x.lengths is not None:
            raise ValueError("Optimizer.step_packed: ids %s and position_ids %s must be "
                             "rectangular and of one shape" % (x.shape, pos.shape))
        loss = c_float()
        check(lib.lora_train_step_packed(self._h("Optimizer.step_packed"), x.ptr, y.ptr,
                                         pos.ptr, x.rows, x.cols, byref(loss)))
        return loss.value

    def set_lr(self, lr):
        """The base learning rate from the next update on (the schedule still applies)."""
        check(lib.lora_optimizer_set_lr(self._h("Optimizer.set_lr"), lr))

    def stats(self):
        """step, micro_step, lr, last_lr, grad_norm, skipped, skips, tokens, last_loss."""
        return json.loads(lib.lora_optimizer_stats_json(self._h("Optimizer.stats"))
                          .decode("utf-8"))

    def save_checkpoint(self, path, data_position=0):
        """Saves weights, optimizer state and trainer_state.json (atomically, by rename)."""
        check(lib.lora_optimizer_save_checkpoint(self._h("Optimizer.save_checkpoint"),
                                                 fspath(path), data_position))

    def load_checkpoint(self, path):
        """Restores a checkpoint; returns the data_position given to the save."""
        pos = c_uint64()
        check(lib.lora_optimizer_load_checkpoint(self._h("Optimizer.load_checkpoint"),
                                                 fspath(path), byref(pos)))
        return pos.value


__all__ = ["Optimizer", "IGNORE_INDEX"]
