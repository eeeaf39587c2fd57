"""Sampler: picks tokens from logits, configured with GenerationConfig names."""

from ctypes import byref, c_int32

from ._arrays import Floats, Ints, config_json
from ._handle import Handle
from ._lib import SamplerP, check, lib

DEFAULT_MAX_NEW_TOKENS = 256  # lora_sampler_create's default


class Sampler(Handle):
    """A token sampler: do_sample, temperature, top_k, top_p, min_p, repetition_penalty,
    presence_penalty, frequency_penalty, seed, max_new_tokens, eos_token_id, stop_sequences.

    >>> smp = Sampler(do_sample=True, temperature=0.8, top_p=0.9, seed=1)
    """

    _free_name = "lora_sampler_free"

    def __init__(self, **config):
        out = SamplerP()
        check(lib.lora_sampler_create(config_json(config, "Sampler"), byref(out)))
        self._own(lib, out)
        self.config = dict(config)

    @property
    def max_new_tokens(self):
        return int(self.config.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS))

    def set_temperature(self, temperature):
        check(lib.lora_sampler_set_temperature(self._h("Sampler.set_temperature"), temperature))
        self.config["temperature"] = temperature

    def set_seed(self, seed):
        """Restarts the random stream: the same seed and inputs give the same tokens."""
        check(lib.lora_sampler_set_seed(self._h("Sampler.set_seed"), seed))
        self.config["seed"] = seed

    def sample(self, logits, tokens=(), n_prompt=0):
        """The next token from one row of logits; tokens are the prompt (its first n_prompt)
        and the tokens generated so far, for the penalties."""
        lg = Floats(logits, "Sampler.sample")
        if len(lg.shape) != 1:
            raise ValueError("Sampler.sample: logits must be 1-D, got shape %s" % (lg.shape,))
        tk = Ints(tokens, "Sampler.sample tokens", ndim=1)
        out = c_int32()
        check(lib.lora_sampler_sample(self._h("Sampler.sample"), lg.ptr, lg.size, tk.ptr,
                                      tk.cols, n_prompt, byref(out)))
        return out.value
