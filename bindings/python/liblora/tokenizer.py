"""Tokenizer, Detokenizer, chat templates and few-shot prompts."""

import ctypes
import json
from ctypes import byref, c_int32, c_size_t, c_void_p

from ._arrays import Ints, Out, config_json, want_numpy
from ._handle import Handle
from ._lib import DetokenizerP, TokenizerP, check, lib, take_string
from .model import fspath

ENCODE_SPECIAL_AS_TEXT = 0x1
ENCODE_UTF8_REPLACE = 0x2
DECODE_SKIP_SPECIAL = 0x1


class Tokenizer(Handle):
    """A Hugging Face byte-level BPE tokenizer (tokenizer.json, tokenizer_config.json).

    >>> tok = Tokenizer.load("path/to/model")       # or model.tokenizer()
    >>> ids = tok.encode("Hello world")
    >>> tok.decode(ids)
    'Hello world'
    """

    _free_name = "lora_tokenizer_free"

    @classmethod
    def _wrap(cls, ptr):
        self = cls.__new__(cls)
        self._own(lib, ptr)
        return self

    @classmethod
    def load(cls, path, **config):
        """A folder holding tokenizer.json, or its path; option chat_template."""
        out = TokenizerP()
        check(lib.lora_tokenizer_load(fspath(path), config_json(config, "Tokenizer.load"),
                                      byref(out)))
        return cls._wrap(out)

    @property
    def vocab_size(self):
        return lib.lora_tokenizer_vocab_size(self._h("Tokenizer.vocab_size"))

    def info(self):
        """vocab_size, bos/eos/pad token ids and texts, chat_template."""
        return json.loads(lib.lora_tokenizer_info_json(self._h("Tokenizer.info"))
                          .decode("utf-8"))

    def encode(self, text, special_as_text=False, utf8_replace=False, as_numpy=False):
        """Text (str, or UTF-8 bytes) to ids, as tokenizer(text, add_special_tokens=False)."""
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
        flags = (ENCODE_SPECIAL_AS_TEXT if special_as_text else 0) | (
            ENCODE_UTF8_REPLACE if utf8_replace else 0)
        h = self._h("Tokenizer.encode")
        cap = len(data) + 16
        while True:
            out, n = Out((cap,), "i", want_numpy(as_numpy)), c_size_t()
            st = lib.lora_tokenizer_encode(h, data, len(data), flags, out.ptr, cap, byref(n))
            if st != 0 and n.value > cap:  # grown by normalisation: once more, large enough
                cap = n.value
                continue
            check(st)
            return out.result((n.value,))

    def decode(self, ids, skip_special=False):
        """Ids to text; invalid UTF-8 becomes U+FFFD."""
        x = Ints(ids, "Tokenizer.decode", ndim=1)
        text, n = c_void_p(), c_size_t()
        check(lib.lora_tokenizer_decode(self._h("Tokenizer.decode"), x.ptr, x.cols,
                                        DECODE_SKIP_SPECIAL if skip_special else 0,
                                        byref(text), byref(n)))
        return take_string(text, n.value)

    def token_id(self, token):
        """The id of a token given as its text, e.g. "<|im_end|>"."""
        out = c_int32()
        check(lib.lora_tokenizer_token_id(self._h("Tokenizer.token_id"),
                                          token.encode("utf-8"), byref(out)))
        return out.value

    def detokenizer(self, skip_special=False):
        """A streaming Detokenizer over this tokenizer."""
        return Detokenizer(self, skip_special)

    def decode_stream(self, ids, skip_special=False):
        """Yields text pieces as ids arrive (e.g. from Session.stream), each holding only
        complete characters; their concatenation equals decode(all ids)."""
        with Detokenizer(self, skip_special) as d:
            for i in ids:
                piece = d.push(i)
                if piece:
                    yield piece
            tail = d.flush()
            if tail:
                yield tail

    def chat_render(self, messages, **options):
        """A conversation ([{"role": ..., "content": ...}]) as the chat template renders it;
        options: template, format, add_generation_prompt, enable_thinking."""
        out = c_void_p()
        check(lib.lora_chat_render(self._h("Tokenizer.chat_render"),
                                   json.dumps(messages).encode("utf-8"),
                                   config_json(options, "Tokenizer.chat_render"), byref(out)))
        return take_string(out)

    def few_shot(self, examples, question, **options):
        """A few-shot prompt from examples ([{"q": ..., "a": ...}]) and a question; options:
        chat, system, format, template, enable_thinking."""
        out = c_void_p()
        check(lib.lora_prompt_few_shot(self._h("Tokenizer.few_shot"),
                                       json.dumps(examples).encode("utf-8"),
                                       question.encode("utf-8"),
                                       config_json(options, "Tokenizer.few_shot"), byref(out)))
        return take_string(out)


class Detokenizer(Handle):
    """Feeds ids one at a time and returns only complete UTF-8 characters."""

    _free_name = "lora_detokenizer_free"

    def __init__(self, tokenizer, skip_special=False):
        out = DetokenizerP()
        check(lib.lora_detokenizer_create(tokenizer._h("Detokenizer"),
                                          DECODE_SKIP_SPECIAL if skip_special else 0,
                                          byref(out)))
        self._own(lib, out)

    def push(self, token):
        """Adds one id; returns the newly complete text (maybe "")."""
        text, n = c_void_p(), c_size_t()
        check(lib.lora_detokenizer_push(self._h("Detokenizer.push"), token, byref(text),
                                        byref(n)))
        return _view(text, n)

    def flush(self):
        """Ends the stream: held-back bytes come out as U+FFFD; starts afresh."""
        text, n = c_void_p(), c_size_t()
        check(lib.lora_detokenizer_flush(self._h("Detokenizer.flush"), byref(text), byref(n)))
        return _view(text, n)


def _view(text, n):
    if not n.value:
        return ""
    return ctypes.string_at(text.value, n.value).decode("utf-8", "replace")
