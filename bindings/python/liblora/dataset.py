"""Dataset: a tokenized JSONL file of training samples, in batches."""

import json
from ctypes import byref, c_size_t

from ._arrays import Out, config_json, want_numpy
from ._handle import Handle
from ._lib import DatasetP, check, lib
from .model import fspath


class Dataset(Handle):
    """Samples from a JSONL file ({"messages"}, {"prompt", "completion"} or {"text"} lines),
    tokenized with labels as TRL's SFTTrainer sets them.

    >>> ds = Dataset.load(tok, "train.jsonl", max_length=512, packing=True, seed=0)
    >>> ids, labels, position_ids = ds.next_batch(8)
    >>> loss = opt.step_packed(ids, labels, position_ids)
    """

    _free_name = "lora_dataset_free"

    @classmethod
    def _wrap(cls, ptr):
        self = cls.__new__(cls)
        self._own(lib, ptr)
        self._max_length = None
        return self

    @classmethod
    def load(cls, tokenizer, path, **config):
        """Options: format, loss, max_length, packing, shuffle, seed, strict, chat (a dict)."""
        out = DatasetP()
        check(lib.lora_dataset_load(tokenizer._h("Dataset.load"), fspath(path),
                                    config_json(config, "Dataset.load"), byref(out)))
        return cls._wrap(out)

    def split(self, test_size, seed=0):
        """(train, test) as Hugging Face's train_test_split: a fraction in (0, 1) or a count."""
        train, test = DatasetP(), DatasetP()
        check(lib.lora_dataset_split(self._h("Dataset.split"), test_size, seed, byref(train),
                                     byref(test)))
        return Dataset._wrap(train), Dataset._wrap(test)

    def __len__(self):
        return lib.lora_dataset_size(self._h("Dataset.size"))

    @property
    def size(self):
        return len(self)

    def stats(self):
        """lines, samples, skipped, truncated, rows, tokens, loss_tokens, loss_share,
        max_length."""
        return json.loads(lib.lora_dataset_stats_json(self._h("Dataset.stats")).decode("utf-8"))

    def _max_len(self):
        if self._max_length is None:
            self._max_length = int(self.stats()["max_length"])
        return self._max_length

    def row(self, i, as_numpy=False):
        """Row i in file order: (ids, labels, position_ids)."""
        if i < 0:
            i += len(self)
        cap = self._max_len()
        np_ = want_numpy(as_numpy)
        ids, labels, pos = Out((cap,), "i", np_), Out((cap,), "i", np_), Out((cap,), "i", np_)
        n = c_size_t()
        check(lib.lora_dataset_row(self._h("Dataset.row"), i, ids.ptr, labels.ptr, pos.ptr, cap,
                                   byref(n)))
        return tuple(o.result((n.value,)) for o in (ids, labels, pos))

    def __getitem__(self, i):
        n = len(self)
        if not -n <= i < n:
            raise IndexError("Dataset index %d out of range (%d rows)" % (i, n))
        return self.row(i)

    def next_batch(self, batch, as_numpy=False):
        """The next `batch` rows of this epoch's order, right-padded: (ids, labels,
        position_ids), each (rows, seq). Cut short at the end of an epoch."""
        cap = batch * self._max_len()
        np_ = want_numpy(as_numpy)
        ids, labels, pos = Out((cap,), "i", np_), Out((cap,), "i", np_), Out((cap,), "i", np_)
        seq, rows = c_size_t(), c_size_t()
        check(lib.lora_dataset_next_batch(self._h("Dataset.next_batch"), batch, ids.ptr,
                                          labels.ptr, pos.ptr, cap, byref(seq), byref(rows)))
        shape = (rows.value, seq.value)
        return tuple(o.result(shape) for o in (ids, labels, pos))

    @property
    def position(self):
        """Where next_batch stands (epoch * size + index), for Optimizer.save_checkpoint."""
        return lib.lora_dataset_position(self._h("Dataset.position"))

    def seek(self, position):
        check(lib.lora_dataset_seek(self._h("Dataset.seek"), position))
