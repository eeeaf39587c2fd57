"""Handles: each object owns one reference; closing or collecting them in any order is safe
because the C library keeps parents alive."""

import gc
import os
import random
import subprocess
import sys
import unittest

from support import QWEN2, QWEN2_ADAPTER, ROOT, liblora

PROMPT = [[5, 6, 7, 8]]


class Lifetime(unittest.TestCase):
    def test_model_closed_first(self):
        m = liblora.Model(QWEN2)
        a = liblora.Adapter.load(m, QWEN2_ADAPTER)
        s = m.session(adapters=[(a, 1.0)])
        before = s.logits(PROMPT)
        greedy = s.generate(PROMPT[0], max_new_tokens=4)
        m.close()
        a.close()
        del m, a
        gc.collect()
        self.assertEqual(s.logits(PROMPT), before)
        s.reset()
        self.assertEqual(s.generate(PROMPT[0], max_new_tokens=4), greedy)
        s.close()

    def test_optimizer_outlives_everything(self):
        m = liblora.Model(QWEN2)
        a = liblora.Adapter.create(m, r=2, seed=1)
        s = m.session(adapters=[a])
        opt = liblora.Optimizer(s, lr=1e-2)
        for h in (s, a, m):
            h.close()
        del s, a, m
        gc.collect()
        first = opt.step([[1, 2, 3, 4]])
        second = opt.step([[1, 2, 3, 4]])
        self.assertLess(second, first)
        opt.close()

    def test_random_collection_order(self):
        rng = random.Random(1234)
        for _ in range(8):
            m = liblora.Model(QWEN2)
            a = liblora.Adapter.load(m, QWEN2_ADAPTER)
            b = liblora.Adapter.create(m, r=2, seed=2)
            s = m.session(adapters=[(a, 0.5), (b, 1.0)])
            s2 = m.session()
            opt = liblora.Optimizer(s, lr=1e-3)
            smp = liblora.Sampler(do_sample=True, seed=3)
            objs = [m, a, b, s, s2, opt, smp]
            del m, a, b, s, s2, opt, smp
            rng.shuffle(objs)
            while objs:
                obj = objs.pop()
                if isinstance(obj, liblora.Session) and rng.random() < 0.5:
                    obj.logits(PROMPT)  # still usable whatever else is gone
                if isinstance(obj, liblora.Optimizer) and rng.random() < 0.5:
                    obj.step(PROMPT)
                if rng.random() < 0.5:
                    obj.close()
                del obj
                gc.collect()

    def test_close_is_idempotent_and_with_closes(self):
        with liblora.Model(QWEN2) as m:
            with m.session() as s:
                s.logits(PROMPT)
            self.assertTrue(s.closed)
            s.close()
            s.close()
        self.assertTrue(m.closed)
        m.close()
        self.assertIn("closed", repr(m))

    def test_closed_handle_is_state_error(self):
        m = liblora.Model(QWEN2)
        s = m.session()
        s.close()
        with self.assertRaises(liblora.LoraStateError) as e:
            s.logits(PROMPT)
        self.assertIn("Session.logits", e.exception.message)
        m.close()
        with self.assertRaises(liblora.LoraStateError):
            m.session()
        with self.assertRaises(liblora.LoraStateError):
            m.vocab_size

    def test_close_during_stream_waits_for_the_stream(self):
        m = liblora.Model(QWEN2)
        s = m.session()
        expected = s.generate(PROMPT[0], max_new_tokens=6)
        s.reset()
        it = s.stream(PROMPT[0], max_new_tokens=6)
        got = [next(it)]
        s.close()            # deferred: the stream still runs on it
        m.close()
        self.assertTrue(s.closed)
        got.extend(it)
        self.assertEqual(got, expected)
        self.assertIsNone(s._ptr)  # freed once the stream ended

    def test_interpreter_exit_with_live_handles(self):
        code = ("import liblora\n"
                "m = liblora.Model(%r)\n"
                "a = liblora.Adapter.load(m, %r)\n"
                "s = m.session(adapters=[a])\n"
                "o = liblora.Optimizer(s)\n"
                "smp = liblora.Sampler()\n"
                "it = s.stream([1, 2, 3], max_new_tokens=50)\n"
                "next(it)\n"
                "cycle = [m, s, a, o, smp, it]\n"
                "cycle.append(cycle)\n"
                "print('ok')\n" % (QWEN2, QWEN2_ADAPTER))
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"))
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=120)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "ok\n", ""))


if __name__ == "__main__":
    unittest.main()
