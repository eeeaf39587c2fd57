"""Model: info, describe, init_checkpoint, merge/unmerge/save; Adapter info."""

import json
import os
import shutil
import tempfile
import unittest

from support import QWEN2, QWEN2_ADAPTER, liblora

PROMPT = [[7, 70, 170, 270, 370]]


class ModelTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)

    def test_info(self):
        m = liblora.Model.load(QWEN2, threads=1)
        info = m.info()
        self.assertEqual(info["model_type"], "qwen2")
        self.assertEqual(info["threads"], 1)
        self.assertEqual(m.vocab_size, 384)
        self.assertEqual(m.num_parameters, 111168)  # as counted in tests/run_cli.sh
        self.assertEqual(info["num_parameters"], m.num_parameters)

    def test_device_memory(self):
        if not liblora.has_function("lora_device_memory"):
            self.skipTest("an older library")
        with self.assertRaises((liblora.LoraInvalidArgumentError, liblora.LoraDeviceError)):
            liblora.device_memory("cpu")
        try:
            used, peak = liblora.device_memory("cuda:5", reset_peak=True)
        except liblora.LoraDeviceError:  # a build without the CUDA backend
            return
        self.assertEqual((used, peak), (0, 0))  # this process has not used that GPU

    def test_describe(self):
        d = liblora.Model.describe(QWEN2)
        self.assertTrue(d["has_weights"])
        self.assertEqual(d["vocab_size"], 384)
        d = liblora.Model.describe(os.path.join(QWEN2, "config.json"))
        self.assertEqual(d["hidden_size"], 64)
        with self.assertRaises(liblora.LoraIOError):
            liblora.Model.describe(os.path.join(self.tmp, "nothing"))

    def test_init_checkpoint(self):
        with open(os.path.join(QWEN2, "config.json")) as f:
            config = json.load(f)
        one, two = os.path.join(self.tmp, "one"), os.path.join(self.tmp, "two")
        liblora.Model.init_checkpoint(config, one, seed=3)
        liblora.Model.init_checkpoint(json.dumps(config), two, seed=3, dtype="f32")
        with open(os.path.join(one, "model.safetensors"), "rb") as f1, \
                open(os.path.join(two, "model.safetensors"), "rb") as f2:
            self.assertEqual(f1.read(), f2.read())
        liblora.Model.init_checkpoint(os.path.join(QWEN2, "config.json"),
                                      os.path.join(self.tmp, "bf16"), seed=3, dtype="bf16")
        self.assertEqual(liblora.Model.describe(os.path.join(self.tmp, "bf16"))["stored_dtype"],
                         "BF16")
        config["hidden_act"] = "gelu_tanh_unknown"
        with self.assertRaises((liblora.LoraConfigError, liblora.LoraUnsupportedError)) as e:
            liblora.Model.init_checkpoint(config, os.path.join(self.tmp, "bad"))
        self.assertIn("hidden_act", e.exception.message)

    def test_merge_unmerge_save(self):
        m = liblora.Model(QWEN2)
        a = liblora.Adapter.load(m, QWEN2_ADAPTER)
        base = m.session().logits(PROMPT)
        attached = m.session(adapters=[a]).logits(PROMPT)
        s = m.session()
        change = m.merge(a, 1.0, probe=PROMPT[0])
        self.assertLess(change, 1e-4)
        merged = s.logits(PROMPT)
        for got, want in zip(merged[0][-1], attached[0][-1]):
            self.assertAlmostEqual(got, want, places=4)
        with self.assertRaises(liblora.LoraStateError):
            m.merge(a)
        path = os.path.join(self.tmp, "merged")
        m.save(path)
        reloaded = liblora.Model(path)
        self.assertEqual(reloaded.session().logits(PROMPT), merged)
        m.unmerge()
        self.assertEqual(s.logits(PROMPT), base)  # bit for bit
        with self.assertRaises(liblora.LoraStateError):
            m.unmerge()
        self.assertEqual(m.merge(a, 0.5), 0.0)  # no probe: 0
        m.unmerge()

    def test_adapter_info_and_report(self):
        m = liblora.Model(QWEN2)
        a = liblora.Adapter.create(m, r=8, lora_alpha=16, target_modules="all-linear", seed=0)
        info = a.info()
        self.assertEqual(info["r"], 8)
        self.assertEqual(info["scaling"], 2.0)
        self.assertEqual(info["modules"], 14)
        self.assertEqual(info["total_parameters"], m.num_parameters + info["trainable_parameters"])
        import contextlib
        import io
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            a.print_trainable_parameters()
        self.assertRegex(out.getvalue(), r"^trainable params: [0-9,]+ \|\| all params: [0-9,]+ "
                                         r"\|\| trainable%: [0-9.]+\n$")
        b = liblora.Adapter.create(m, r=4, target_modules=["q_proj"], layers_to_transform=[1],
                                   rank_pattern={"q_proj": 2}, seed=0)
        self.assertEqual(b.info()["modules"], 1)
        self.assertEqual(b.info()["trainable_parameters"], 2 * (64 + 64))


if __name__ == "__main__":
    unittest.main()
