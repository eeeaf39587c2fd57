"""Training through the bindings: the course's first exercise (the loop in docs/python.md),
checkpoints, packed steps, saving and loading adapters."""

import contextlib
import io
import os
import re
import shutil
import tempfile
import unittest

from support import QWEN2, ROOT, liblora


def training_loop():
    # --- begin docs/python.md training loop
    import json, tempfile
    import liblora

    with open("tests/fixtures/tiny-qwen2/config.json") as f:
        config = json.load(f)
    config["initializer_range"] = 0.2       # larger embeddings: logits that can separate
    path = tempfile.mkdtemp()
    liblora.Model.init_checkpoint(config, path, seed=5)
    m = liblora.Model(path)
    a = liblora.Adapter.create(m, r=8, lora_alpha=16, target_modules="all-linear", seed=1)
    s = m.session(adapters=[a])             # inject: the session applies the adapter
    opt = liblora.Optimizer(s, lr=0.01, weight_decay=0.0)  # trains the attached adapter's A, B
    samples = [[(i * 97 + t * 31 + t * t % 7) % 384 for t in range(10)] for i in range(4)]
    for epoch in range(5):
        loss = sum(opt.step([x]) for x in samples) / len(samples)
        print(f"epoch {epoch}: loss {loss:.3f}")
    m.merge(a)                              # fold scaling * B A into the weights
    s.set_adapters([])                      # the merged model alone
    print(s.generate(samples[0][:3], max_new_tokens=7))  # continues sample 0
    # --- end docs/python.md training loop
    return m, a, s, samples, path


def loop_source():
    with open(__file__, encoding="utf-8") as f:
        text = f.read()
    body = text.split("# --- begin docs/python.md training loop\n")[1]
    body = body.split("    # --- end docs/python.md training loop")[0]
    return "".join(line[4:] + "\n" for line in body.splitlines())


class Exercise(unittest.TestCase):
    def setUp(self):
        self.cwd = os.getcwd()
        os.chdir(ROOT)

    def tearDown(self):
        os.chdir(self.cwd)

    def test_overfit_merge_generate(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            m, a, s, samples, path = training_loop()
        self.addCleanup(shutil.rmtree, path)
        losses = [float(x) for x in re.findall(r"^epoch \d: loss ([0-9.]+)$", out.getvalue(),
                                                re.M)]
        self.assertEqual(len(losses), 5, out.getvalue())
        for before, after in zip(losses, losses[1:]):
            self.assertLess(after, before, "loss did not fall every epoch: %s" % losses)
        self.assertLess(losses[-1] * 10, losses[0], "loss fell only from %g to %g"
                        % (losses[0], losses[-1]))
        # Overfit: the merged model alone continues every sample from its first 3 tokens.
        self.assertIn(str(samples[0][3:]), out.getvalue())
        for x in samples:
            s.reset()
            self.assertEqual(s.generate(x[:3], max_new_tokens=7), x[3:])
        # Unmerged and attached gives the same continuation; unmerged alone does not.
        m.unmerge()
        s.reset()
        self.assertNotEqual(s.generate(samples[1][:3], max_new_tokens=7), samples[1][3:])
        s.set_adapters([(a, 1.0)])
        self.assertEqual(s.generate(samples[1][:3], max_new_tokens=7), samples[1][3:])

    def test_docs_hold_the_same_loop(self):
        with open(os.path.join(ROOT, "docs", "python.md"), encoding="utf-8") as f:
            docs = f.read()
        self.assertIn("```python\n" + loop_source() + "```", docs)


class Optimizing(unittest.TestCase):
    def setUp(self):
        self.m = liblora.Model(QWEN2, threads=2)
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)

    def session(self, seed=3):
        a = liblora.Adapter.create(self.m, r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                   init_lora_weights=False, seed=seed)
        return a, self.m.session(adapters=[(a, 1.0)])

    def test_stats_and_set_lr(self):
        _, s = self.session()
        opt = liblora.Optimizer(s, lr=1e-3, lr_scheduler_type="linear", num_training_steps=10)
        self.assertEqual(opt.stats()["step"], 0)
        loss = opt.step([[1, 2, 3, 4, 5]])
        st = opt.stats()
        self.assertEqual(st["step"], 1)
        self.assertEqual(st["tokens"], 4)
        self.assertAlmostEqual(st["last_loss"], loss, places=5)
        self.assertAlmostEqual(st["lr"], 1e-3 * 9 / 10, places=9)
        opt.set_lr(2e-3)
        self.assertAlmostEqual(opt.stats()["lr"], 2e-3 * 9 / 10, places=9)
        with self.assertRaises(liblora.LoraConfigError) as e:
            opt.set_lr(-1.0)
        self.assertIn("lr", e.exception.message)

    def test_loss_before_step_equals_session_loss(self):
        _, s = self.session()
        ids = [[5, 9, 11, 40, 2], [7, 8, 1]]  # ragged: padding is never counted
        expected = s.loss(ids)
        opt = liblora.Optimizer(s, lr=1e-2)
        self.assertAlmostEqual(opt.step(ids), expected, places=5)
        self.assertEqual(opt.stats()["tokens"], 4 + 2)
        self.assertNotAlmostEqual(s.loss(ids), expected, places=4)  # it learned something

    def test_checkpoint_roundtrip(self):
        data = [[3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8]]
        a, s = self.session()
        opt = liblora.Optimizer(s, lr=1e-2, seed=4)
        opt.step(data)
        ckpt = os.path.join(self.tmp, "ckpt")
        opt.save_checkpoint(ckpt, data_position=17)
        opt.step(data)
        after_two = s.logits(data)

        b, s2 = self.session(seed=99)  # other initial weights: the checkpoint replaces them
        opt2 = liblora.Optimizer(s2, lr=1e-2, seed=4)
        self.assertEqual(opt2.load_checkpoint(ckpt), 17)
        self.assertEqual(opt2.stats()["step"], 1)
        opt2.step(data)
        self.assertEqual(s2.logits(data), after_two)
        with self.assertRaises(liblora.LoraIOError):
            opt2.load_checkpoint(os.path.join(self.tmp, "missing"))

    def test_adapter_save_load(self):
        a, s = self.session()
        opt = liblora.Optimizer(s, lr=1e-2)
        for _ in range(3):
            opt.step([[10, 20, 30, 40]])
        path = os.path.join(self.tmp, "adapter")
        a.save(path)
        self.assertTrue(os.path.exists(os.path.join(path, "adapter_config.json")))
        m2 = liblora.Model(QWEN2)
        b = liblora.Adapter.load(m2, path)
        self.assertEqual(b.info()["trainable_parameters"], a.info()["trainable_parameters"])
        with m2.session(adapters=[b]) as s2:
            self.assertEqual(s2.logits([[10, 20, 30, 40]]), s.logits([[10, 20, 30, 40]]))

    @unittest.skipUnless(liblora.has_function("lora_train_step_packed"),
                         "lora_train_step_packed not implemented in this build")
    def test_step_packed(self):
        first, second = [4, 8, 15, 16, 23], [42, 7, 9]
        a, s = self.session()
        l1, n1 = s.loss([first], with_count=True)
        l2, n2 = s.loss([second], with_count=True)
        opt = liblora.Optimizer(s, lr=1e-2)
        ids = [first + second]
        labels = [first + [-100] + second[1:]]  # the second sample's first token is not predicted
        position_ids = [list(range(len(first))) + list(range(len(second)))]
        loss = opt.step_packed(ids, labels, position_ids)
        self.assertAlmostEqual(loss, (l1 * n1 + l2 * n2) / (n1 + n2), places=5)
        with self.assertRaises(liblora.LoraRangeError):
            opt.step_packed(ids, labels, [[0, 1, 2, 5, 6, 0, 1, 2]])
        with self.assertRaises(ValueError):
            opt.step_packed(ids, labels, [[0, 1, 2]])


if __name__ == "__main__":
    unittest.main()
