"""Session: one thread's forward passes, KV cache, attached adapters and generation."""

import atexit
import queue
import sys
import threading
from ctypes import byref, c_float, c_size_t

from ._arrays import Ints, Out, config_json, want_numpy
from ._handle import Handle
from ._lib import TOKEN_CB, AdapterP, SessionP, check, last_error, lib, status_error
from .adapter import Adapter
from .sampler import Sampler

IGNORE_INDEX = -100  # labels that are not counted


class Session(Handle):
    """Mutable state over a model: KV cache, workspace, attached adapters.

    Options are keyword arguments: max_context, threads, train_activations
    (lora_session_create), and adapters: a list of adapters or of (adapter, scale) pairs to
    attach.

    Token-id inputs may be nested lists (rows of different lengths are right-padded and their
    lengths passed on), array.array('i') or any int32 buffer, or numpy arrays; a 1-D input
    where a batch is expected is a batch of one. Results are nested lists, or numpy arrays when
    the input was one (or as_numpy=True).
    """

    _free_name = "lora_session_free"

    def __init__(self, model, adapters=None, **options):
        out = SessionP()
        check(lib.lora_session_create(model._h("Session"), config_json(options, "Session"),
                                      byref(out)))
        self._own(lib, out)
        self.vocab_size = model.vocab_size
        self.adapters = ()
        if adapters:
            self.set_adapters(adapters)

    # --- forward passes -----------------------------------------------------------------------
    def logits(self, ids, lengths=None, as_numpy=None):
        """(B, T, V) logits of right-padded sequences; padded rows are 0."""
        x, lens = self._batch(ids, lengths, "Session.logits")
        out = Out((x.rows, x.cols, self.vocab_size), "f", want_numpy(as_numpy, ids))
        check(lib.lora_session_logits(self._h("Session.logits"), x.ptr, lens, x.rows, x.cols,
                                      out.ptr))
        return out.result()

    def logprobs(self, ids, lengths=None, as_numpy=None):
        """(B, T): log p(ids[b][t] | ids[b][:t]); position 0 and padding are 0."""
        x, lens = self._batch(ids, lengths, "Session.logprobs")
        out = Out((x.rows, x.cols), "f", want_numpy(as_numpy, ids))
        check(lib.lora_session_logprobs(self._h("Session.logprobs"), x.ptr, lens, x.rows,
                                        x.cols, out.ptr))
        return out.result()

    def loss(self, ids, labels=None, with_count=False):
        """Hugging Face's causal-LM loss (labels default to ids; -100 is not counted). With
        with_count=True returns (loss, number of counted tokens)."""
        x, y = batch_with_labels(ids, labels, "Session.loss")
        loss, n = c_float(), c_size_t()
        check(lib.lora_session_loss(self._h("Session.loss"), x.ptr, y.ptr, x.rows, x.cols,
                                    byref(loss), byref(n)))
        return (loss.value, n.value) if with_count else loss.value

    def append(self, ids, as_numpy=None):
        """Runs tokens into the KV cache; returns the (V) logits of the last one."""
        x = Ints(ids, "Session.append", ndim=1)
        x.require_nonempty("Session.append")
        out = Out((self.vocab_size,), "f", want_numpy(as_numpy, ids))
        check(lib.lora_session_append(self._h("Session.append"), x.ptr, x.cols, out.ptr))
        return out.result()

    @property
    def position(self):
        """The number of tokens in the KV cache."""
        return lib.lora_session_position(self._h("Session.position"))

    def reset(self):
        """Empties the KV cache."""
        lib.lora_session_reset(self._h("Session.reset"))

    def set_adapters(self, adapters):
        """Replaces the attached adapters: a list of adapters or (adapter, scale) pairs; [] detaches
        all. Resets the KV cache."""
        pairs = [(a, 1.0) if isinstance(a, Adapter) else tuple(a) for a in adapters]
        n = len(pairs)
        ptrs = (AdapterP * max(n, 1))(*[a._h("Session.set_adapters") for a, _ in pairs])
        scales = (c_float * max(n, 1))(*[s for _, s in pairs])
        check(lib.lora_session_set_adapters(self._h("Session.set_adapters"), ptrs, scales, n))
        self.adapters = tuple(pairs)

    def _batch(self, ids, lengths, what):
        x = Ints(ids, what)
        x.require_nonempty(what)
        if lengths is not None:
            lens = Ints(lengths, what + " lengths", ndim=1)
            if lens.cols != x.rows:
                raise ValueError("%s: %d lengths for %d rows" % (what, lens.cols, x.rows))
            return x, lens.ptr
        return x, x.lengths_ptr()

    # --- generation ---------------------------------------------------------------------------
    def generate(self, prompt, sampler=None, stream=False, as_numpy=None, **sampler_options):
        """Appends the prompt to the KV cache and generates; returns the new token ids.

        Give a Sampler, or its options as keywords (max_new_tokens, do_sample, temperature...);
        with neither, greedy up to 256 tokens. Generation continues from what the cache holds
        (reset() first for a fresh start), as lora_generate does. stream=True returns
        stream(...) instead. If generation fails midway (the context fills), the exception's
        .tokens holds the tokens generated before.
        """
        if stream:
            return self.stream(prompt, sampler, **sampler_options)
        p = Ints(prompt, "Session.generate", ndim=1)
        p.require_nonempty("Session.generate")
        smp, owned = _sampler(sampler, sampler_options)
        try:
            cap = smp.max_new_tokens
            out = Out((cap,), "i", want_numpy(as_numpy, prompt))
            n = c_size_t()
            st = lib.lora_generate(self._h("Session.generate"), smp._h("Session.generate"),
                                   p.ptr, p.cols, out.ptr, cap, byref(n), TOKEN_CB(), None)
            tokens = out.result((n.value,))
            try:
                check(st)
            except Exception as e:
                e.tokens = tokens
                raise
            return tokens
        finally:
            if owned:
                smp.close()

    def stream(self, prompt, sampler=None, **sampler_options):
        """Like generate, but an iterator that yields each token as soon as it is chosen.

        Generation runs in a worker thread that hands tokens over one at a time; the GIL is
        released during the C computation. Leaving the loop early (break, or closing the
        iterator) stops generation after the current token. While the iterator is running, the
        session and the sampler refuse other calls (LoraStateError).
        """
        p = Ints(prompt, "Session.stream", ndim=1)
        p.require_nonempty("Session.stream")
        self._h("Session.stream")
        smp, owned = _sampler(sampler, sampler_options)
        return self._stream(p, smp, owned)

    def _stream(self, p, smp, owned):
        try:
            session_ptr, sampler_ptr = self._h("Session.stream"), smp._h("Session.stream")
        except Exception:
            if owned:
                smp.close()
            raise
        self._acquire()
        smp._acquire()
        gen = _Generation(session_ptr, sampler_ptr, p, smp.max_new_tokens)
        try:
            yield from gen.tokens()
        finally:
            if gen.stop():
                self._release()
                smp._release()
                if owned:
                    smp.close()


class _Generation:
    """One lora_generate call in a worker thread, handing tokens over one at a time through a
    queue of one: the worker waits until the consumer has taken each token."""

    def __init__(self, session_ptr, sampler_ptr, prompt, cap):
        self.handoff = queue.Queue(maxsize=1)
        self.stopping = threading.Event()
        self.callback = TOKEN_CB(self._on_token)  # referenced until the worker has returned
        self.worker = threading.Thread(target=self._work, name="liblora-generate", daemon=True,
                                       args=(session_ptr, sampler_ptr, prompt, cap))
        _running.add(self)
        self.worker.start()

    def _on_token(self, token, _user):
        if self.stopping.is_set():
            return 1
        self.handoff.put(("token", token))
        return 1 if self.stopping.is_set() else 0

    def _work(self, session_ptr, sampler_ptr, prompt, cap):
        try:
            out = Out((cap,), "i", False)
            n = c_size_t()
            st = lib.lora_generate(session_ptr, sampler_ptr, prompt.ptr, prompt.cols, out.ptr,
                                   cap, byref(n), self.callback, None)
            self.handoff.put(("end", st, last_error() if st else ""))
        except BaseException as e:  # handed to the consumer, raised there
            self.handoff.put(("raise", e))

    def tokens(self):
        while True:
            item = self.handoff.get()
            if item[0] == "token":
                yield item[1]
            elif item[0] == "raise":
                raise item[1]
            else:
                _, st, message = item
                if st:
                    raise status_error(st, message)
                return

    def stop(self):
        """Asks the worker to stop after its current token and waits for it; False when it
        cannot be waited for (the interpreter is shutting down its threads)."""
        self.stopping.set()
        while self.worker.is_alive():
            if sys.is_finalizing():
                return False
            try:
                self.handoff.get(timeout=0.05)
            except queue.Empty:
                pass
        self.worker.join()
        _running.discard(self)
        return True


# Streams still running at exit are stopped while threads can still run: later, during the
# interpreter's finalisation, a daemon worker could never finish.
_running = set()


@atexit.register
def _stop_running_streams():
    for gen in list(_running):
        gen.stop()


def _sampler(sampler, options):
    if sampler is not None:
        if options:
            raise TypeError("pass a Sampler or sampler options, not both (got %s)"
                            % ", ".join(sorted(options)))
        return sampler, False
    return Sampler(**options), True


def batch_with_labels(ids, labels, what):
    """ids and labels as equal (B, T) int32 matrices: ragged rows are padded with 0 in ids and
    -100 in labels, so padding is never counted; labels default to ids."""
    x = Ints(ids, what)
    x.require_nonempty(what)
    if labels is None:
        y = Ints(ids, what + " labels", pad=IGNORE_INDEX)
    else:
        y = Ints(labels, what + " labels", pad=IGNORE_INDEX)
    if y.shape != x.shape or (y.lengths is not None and y.lengths != x.lengths):
        raise ValueError("%s: labels of shape %s for ids of shape %s"
                         % (what, y.shape, x.shape))
    return x, y
