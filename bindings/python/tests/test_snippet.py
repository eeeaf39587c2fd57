"""The issue's snippet, verbatim, checked against the fixture's golden results."""

import os
import unittest

from support import QWEN2, ROOT, flatten, max_rel_error, read_safetensors

GOLDEN = read_safetensors(os.path.join(QWEN2, "golden.safetensors"))


class Snippet(unittest.TestCase):
    def setUp(self):
        self.cwd = os.getcwd()
        os.chdir(ROOT)  # the snippet's paths are relative to the repository root

    def tearDown(self):
        os.chdir(self.cwd)

    def test_snippet(self):
        import liblora
        m = liblora.Model("tests/fixtures/tiny-qwen2")
        a = liblora.Adapter.load(m, "tests/fixtures/tiny-qwen2/adapter")
        s = m.session(adapters=[(a, 1.0)])
        logits = s.logits([[1, 2, 3]])          # [batch][time][vocab]
        ids = s.generate([1, 2, 3], max_new_tokens=8, do_sample=False)

        self.assertEqual((len(logits), len(logits[0]), len(logits[0][0])), (1, 3, 384))
        self.assertTrue(all(isinstance(v, float) for v in logits[0][2]))
        self.assertEqual(len(ids), 8)
        self.assertTrue(all(isinstance(t, int) and 0 <= t < 384 for t in ids))
        # Greedy: the first token is the argmax of the prompt's last logits.
        last = logits[0][2]
        self.assertEqual(ids[0], max(range(384), key=last.__getitem__))

    def test_golden_logits_and_greedy(self):
        import liblora
        m = liblora.Model(QWEN2)
        a = liblora.Adapter.load(m, os.path.join(QWEN2, "adapter"))
        _, (b, t), ids = GOLDEN["input_ids"]
        rows = [ids[i * t:(i + 1) * t] for i in range(b)]
        with m.session() as base, m.session(adapters=[(a, 1.0)]) as s:
            self.assertLess(max_rel_error(flatten(base.logits(rows)), GOLDEN["logits_base"][2]),
                            1e-5)
            self.assertLess(max_rel_error(flatten(s.logits(rows)), GOLDEN["logits_lora"][2]),
                            1e-5)
            greedy = GOLDEN["greedy_lora_prompt5_new8"][2]
            self.assertEqual(s.generate(rows[0][:5], max_new_tokens=8), greedy[5:])

    def test_golden_loss(self):
        import liblora
        m = liblora.Model(QWEN2)
        _, (b, t), ids = GOLDEN["input_ids"]
        labels = GOLDEN["labels"][2]
        s = m.session()
        loss = s.loss([ids[i * t:(i + 1) * t] for i in range(b)],
                      [labels[i * t:(i + 1) * t] for i in range(b)])
        self.assertAlmostEqual(loss, GOLDEN["loss_base"][2][0], delta=1e-5 * abs(loss))


if __name__ == "__main__":
    unittest.main()
