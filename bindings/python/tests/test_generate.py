"""Generation: lists, streaming iterators, samplers, errors midway."""

import threading
import unittest

from support import QWEN2, QWEN2_ADAPTER, liblora

PROMPT = [11, 22, 33, 44]


class Generate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = liblora.Model(QWEN2)
        cls.a = liblora.Adapter.load(cls.m, QWEN2_ADAPTER)

    def setUp(self):
        self.s = self.m.session(adapters=[(self.a, 1.0)])

    def tearDown(self):
        self.s.close()

    def fresh(self, fn, *args, **kw):
        self.s.reset()
        return fn(*args, **kw)

    def test_stream_equals_generate(self):
        for options in ({"max_new_tokens": 12},
                        {"max_new_tokens": 12, "do_sample": True, "temperature": 1.5, "seed": 7},
                        {"max_new_tokens": 12, "do_sample": True, "top_k": 20, "top_p": 0.9,
                         "repetition_penalty": 1.3, "seed": 8}):
            listed = self.fresh(self.s.generate, PROMPT, **options)
            self.assertEqual(len(listed), 12)
            streamed = self.fresh(lambda: list(self.s.stream(PROMPT, **options)))
            self.assertEqual(streamed, listed, options)
            also = self.fresh(lambda: list(self.s.generate(PROMPT, stream=True, **options)))
            self.assertEqual(also, listed)

    def test_stream_is_lazy_and_stops_early(self):
        full = self.fresh(self.s.generate, PROMPT, max_new_tokens=30)
        self.s.reset()
        seen = []
        it = self.s.stream(PROMPT, max_new_tokens=30)
        for tok in it:
            seen.append(tok)
            if len(seen) == 3:
                break
        it.close()
        self.assertEqual(seen, full[:3])
        # generation stopped: far fewer than 30 tokens went into the cache
        self.assertLess(self.s.position, len(PROMPT) + 10)
        self.assertEqual(self.fresh(self.s.generate, PROMPT, max_new_tokens=30), full)

    def test_stream_runs_while_consumer_waits(self):
        # Tokens come one by one: the consumer sees the first before the last is chosen.
        it = self.fresh(self.s.stream, PROMPT, max_new_tokens=20)
        first = next(it)
        self.assertGreater(self.s._busy, 0)
        rest = list(it)
        self.assertEqual(self.s._busy, 0)
        self.assertEqual([first] + rest, self.fresh(self.s.generate, PROMPT, max_new_tokens=20))

    def test_session_refuses_calls_during_a_stream(self):
        smp = liblora.Sampler(max_new_tokens=5)
        it = self.s.stream(PROMPT, sampler=smp)
        next(it)
        with self.assertRaises(liblora.LoraStateError) as e:
            self.s.logits([PROMPT])
        self.assertIn("stream", e.exception.message)
        with self.assertRaises(liblora.LoraStateError):
            smp.set_seed(1)
        it.close()
        self.s.logits([PROMPT])
        smp.set_seed(1)

    def test_sampler_object_and_reproducibility(self):
        smp = liblora.Sampler(do_sample=True, temperature=0.8, top_p=0.9, seed=1,
                              max_new_tokens=10)
        first = self.fresh(self.s.generate, PROMPT, sampler=smp)
        smp.set_seed(1)
        self.assertEqual(self.fresh(self.s.generate, PROMPT, sampler=smp), first)
        smp.set_seed(1)
        self.assertEqual(self.fresh(lambda: list(self.s.stream(PROMPT, sampler=smp))), first)
        smp.set_temperature(0.0)  # greedy
        self.assertEqual(self.fresh(self.s.generate, PROMPT, sampler=smp),
                         self.fresh(self.s.generate, PROMPT, max_new_tokens=10))
        with self.assertRaises(TypeError):
            self.s.generate(PROMPT, sampler=smp, max_new_tokens=3)
        with self.assertRaises(liblora.LoraConfigError):
            smp.set_temperature(-1.0)

    def test_eos_and_stop(self):
        full = self.fresh(self.s.generate, PROMPT, max_new_tokens=10)
        eos = full[4]
        cut = full[:full.index(eos) + 1]
        self.assertEqual(self.fresh(self.s.generate, PROMPT, max_new_tokens=10,
                                    eos_token_id=eos), cut)
        self.assertEqual(self.fresh(lambda: list(self.s.stream(PROMPT, max_new_tokens=10,
                                                               eos_token_id=[eos]))), cut)

    def test_context_full_keeps_the_tokens(self):
        with self.m.session(max_context=8) as s:
            with self.assertRaises(liblora.LoraRangeError) as e:
                s.generate(PROMPT, max_new_tokens=20)
            tokens = e.exception.tokens
            self.assertGreater(len(tokens), 0)
            self.assertLess(len(tokens), 20)
            s.reset()
            streamed = []
            with self.assertRaises(liblora.LoraRangeError):
                for t in s.stream(PROMPT, max_new_tokens=20):
                    streamed.append(t)
            self.assertEqual(streamed, tokens)

    def test_append_position_reset_and_sampling_by_hand(self):
        s = self.s
        s.reset()
        logits = s.append(PROMPT)
        self.assertEqual(s.position, 4)
        self.assertEqual(len(logits), 384)
        smp = liblora.Sampler()
        tokens = list(PROMPT)
        for _ in range(5):
            tok = smp.sample(logits, tokens, n_prompt=len(PROMPT))
            self.assertEqual(tok, max(range(384), key=logits.__getitem__))
            tokens.append(tok)
            logits = s.append([tok])
        self.assertEqual(s.position, 9)
        self.assertEqual(tokens[4:], self.fresh(s.generate, PROMPT, max_new_tokens=5))
        s.reset()
        self.assertEqual(s.position, 0)

    def test_two_threads_two_sessions(self):
        # Different sessions over one model run concurrently (ctypes releases the GIL).
        expected = self.fresh(self.s.generate, PROMPT, max_new_tokens=16)
        results, errors = {}, []

        def work(i):
            try:
                with self.m.session(adapters=[self.a]) as s:
                    results[i] = [s.generate(PROMPT, max_new_tokens=16) for _ in range(3)
                                  if s.reset() is None]
            except Exception as e:  # reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(results, {0: [expected] * 3, 1: [expected] * 3})

    def test_set_adapters_scales(self):
        b = liblora.Adapter.create(self.m, r=2, seed=5)
        base = self.m.session()
        zero = self.m.session(adapters=[(self.a, 0.0), b])  # b starts as the identity
        self.assertEqual([x for x, _ in zero.adapters], [self.a, b])
        for got, want in zip(zero.logits([PROMPT])[0][-1], base.logits([PROMPT])[0][-1]):
            self.assertAlmostEqual(got, want, places=5)
        zero.set_adapters([])
        self.assertEqual(zero.adapters, ())
        with self.assertRaises(liblora.LoraInvalidArgumentError):
            zero.set_adapters([(self.a, float("inf"))])


if __name__ == "__main__":
    unittest.main()
