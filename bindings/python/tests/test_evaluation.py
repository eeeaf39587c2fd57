"""Evaluation: answer extraction and matching, pass@k, forecast metrics, FLOPs and MFU."""

import json
import math
import os
import tempfile
import unittest
from fractions import Fraction

from support import QWEN2, ROOT, liblora, needs, needs_numpy, needs_path, numpy

QWEN05 = os.path.join(ROOT, "tests", "fixtures", "qwen2.5-0.5b-config")
ALL_LINEAR_R16 = {"r": 16, "lora_alpha": 32, "target_modules": "all-linear"}


@needs("lora_answer_extract", "lora_answer_normalize", "lora_answer_match")
class Answers(unittest.TestCase):
    def test_boxed(self):
        cases = [
            ("so 50 minutes give \\boxed{\\$10.00}.", "10"),
            ("\\boxed{\\frac{1}{2}}", "1/2"),
            ("nested: \\boxed{{\\{3\\}}}", "\\{3\\}"),
            ("first \\boxed{4}, then \\boxed {5}", "5"),
            ("\\fbox{12} and an unclosed \\boxed{\\frac{1}{2}", "12"),
            ("\\boxed{} but 7 apples", "7"),
        ]
        for text, answer in cases:
            self.assertEqual(liblora.extract_answer(text), answer, text)

    def test_marker_and_last_number(self):
        cases = [
            ("Weng earns 12/60 = $0.2 per minute.\n#### 10", "10"),
            ("work\n#### 1,234\n", "1234"),
            ("#### Title\nThe answer is 42.", "42"),
            ("x = -5", "-5"),
            ("3-5", "5"),
            ("about 1,234,567 and then .5", "0.5"),
            ("a ratio of 3/4", "3/4"),
        ]
        for text, answer in cases:
            self.assertEqual(liblora.extract_answer(text), answer, text)

    def test_no_answer_is_none(self):
        for text in ("", "no number here", "\\boxed{}", b"still none"):
            self.assertIsNone(liblora.extract_answer(text), text)
        self.assertEqual(liblora.extract_answer("caf\u00e9 \\boxed{\u00e9t\u00e9}".encode()),
                         "\u00e9t\u00e9")
        # the length is passed: text after a NUL is still read
        self.assertEqual(liblora.extract_answer("1\0 2"), "2")

    def test_normalize(self):
        cases = [
            ("x = \\frac{1}{2}", "1/2"),
            ("\\boxed{\\$1,234.00}", "1234"),
            ("-\\frac{1}{2}", "-1/2"),
            ("007", "7"),
            ("5.50", "5.5"),
            (".5", "0.5"),
            ("-0", "0"),
            ("1,23", "1,23"),
            ("18 dollars", "18"),
            ("5\\text{ cm}", "5"),
            ("90^\\circ", "90"),
            ("  Monday. ", "Monday"),
            ("$", ""),
        ]
        for answer, normal in cases:
            self.assertEqual(liblora.normalize_answer(answer), normal, answer)

    def test_match(self):
        yes = [("7", "007"), ("1234", "1,234"), ("0.5", "1/2"), ("0.5", "\\frac{2}{4}"),
               ("x = 10", "#### 10"[5:]), ("$18.00", "18 dollars"), ("Monday", "Monday."),
               ("123456789012345678901234567890", "123456789012345678901234567890")]
        no = [("0.333", "1/3"), ("Monday", "monday"), ("6", "7"),
              ("123456789012345678901234567890", "123456789012345678901234567891")]
        for pred, ref in yes:
            self.assertIs(liblora.answers_match(pred, ref), True, (pred, ref))
        for pred, ref in no:
            self.assertIs(liblora.answers_match(pred, ref), False, (pred, ref))
        self.assertIs(liblora.answers_match(None, "7"), False)
        self.assertIs(liblora.answers_match(b"7", b"7"), True)

    def test_extract_then_match(self):
        reference = "Weng earns 12/60 = $0.2 per minute.\nWorking 50 minutes, she earned 10.\n#### 10"
        output = "... so 50 minutes give \\boxed{\\$10.00}."
        self.assertTrue(liblora.answers_match(liblora.extract_answer(output),
                                              liblora.extract_answer(reference)))
        self.assertFalse(liblora.answers_match(liblora.extract_answer("no idea"),
                                               liblora.extract_answer(reference)))

    def test_misuse(self):
        with self.assertRaises(TypeError):
            liblora.extract_answer(42)
        with self.assertRaises(TypeError):
            liblora.normalize_answer(None)
        with self.assertRaises(TypeError):
            liblora.answers_match("7", None)
        with self.assertRaises(ValueError):
            liblora.normalize_answer("1\0 2")
        with self.assertRaises(ValueError):
            liblora.answers_match("1", "1\0")


def comb_pass_at_k(n, c, k):
    if n - c < k:
        return 1.0
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


@needs("lora_pass_at_k", "lora_pass_at_k_table")
class PassAtK(unittest.TestCase):
    def test_against_comb(self):
        for n in range(1, 13):
            for c in range(n + 1):
                for k in range(1, n + 1):
                    self.assertAlmostEqual(liblora.pass_at_k(n, c, k), comb_pass_at_k(n, c, k),
                                           delta=1e-12, msg=(n, c, k))

    def test_large_n(self):
        for n, c, k in ((2000, 1, 1), (2000, 1, 100), (2000, 37, 10), (5000, 4990, 5),
                        (10 ** 6, 3, 1000)):
            want = comb_pass_at_k(n, c, k)
            self.assertLessEqual(abs(liblora.pass_at_k(n, c, k) - want), 1e-12 * max(want, 1e-3),
                                 (n, c, k))
        self.assertEqual(liblora.pass_at_k(10, 0, 5), 0.0)
        self.assertEqual(liblora.pass_at_k(10, 7, 4), 1.0)
        self.assertAlmostEqual(liblora.pass_at_k(10, 3, 1), 0.3, delta=1e-15)

    def test_table_of_the_header_example(self):
        table = liblora.pass_at_k_table([[0, 1, 0, 1]])
        self.assertEqual((table["questions"], table["rollouts"], table["correct"],
                          table["solved"]), (1, 4, 2, 1))
        self.assertEqual([row["k"] for row in table["table"]], [1, 2, 3, 4])
        for row, p, a in zip(table["table"], (0.5, 5 / 6, 1, 1), (0, 0.5, 1 / 3, 0.5)):
            self.assertAlmostEqual(row["pass_at_k"], p, delta=1e-12)
            self.assertAlmostEqual(row["avg_at_k"], a, delta=1e-12)
        self.assertEqual(liblora.pass_at_k_table([[False, True, False, True]], as_text=True),
                         "k    pass@k     avg@k\n1    0.5000    0.0000\n2    0.8333    0.5000\n"
                         "3    1.0000    0.3333\n4    1.0000    0.5000\n")

    def test_table_by_hand(self):
        correct = [[1, 0, 0, 0, 1], [0, 0, 0, 0, 0], [1, 1, 1, 0, 1], [0, 0, 1, 0, 0]]
        table = liblora.pass_at_k_table(correct)
        n = len(correct[0])
        self.assertEqual((table["questions"], table["rollouts"], table["correct"],
                          table["solved"]), (4, 5, 7, 3))
        self.assertEqual(len(table["table"]), n)
        for row in table["table"]:
            k = row["k"]
            want_pass = sum(comb_pass_at_k(n, sum(q), k) for q in correct) / len(correct)
            want_avg = sum(sum(q[:k]) / k for q in correct) / len(correct)
            self.assertAlmostEqual(row["pass_at_k"], want_pass, delta=1e-12, msg=k)
            self.assertAlmostEqual(row["avg_at_k"], want_avg, delta=1e-12, msg=k)
        text = liblora.pass_at_k_table(correct, as_text=True).splitlines()
        self.assertEqual(text[0].split(), ["k", "pass@k", "avg@k"])
        self.assertEqual(len(text), n + 1)
        self.assertEqual(text[1].split(), ["1", "%.4f" % (7 / 20), "%.4f" % (2 / 4)])
        # any non-zero integer is a correct rollout (256 does not wrap to 0 in a byte)
        self.assertEqual(liblora.pass_at_k_table([[256, 0], [-1, 0]])["correct"], 2)
        self.assertEqual(liblora.pass_at_k_table(((True, 0), (0, 0)))["solved"], 1)

    @needs_numpy
    def test_table_numpy(self):
        correct = [[1, 0, 0, 0, 1], [0, 0, 0, 0, 0], [1, 1, 1, 0, 1], [0, 0, 1, 0, 0]]
        want = liblora.pass_at_k_table(correct)
        for dtype in (numpy.bool_, numpy.int8, numpy.int64, numpy.uint16):
            a = numpy.array(correct, dtype=dtype)
            self.assertEqual(liblora.pass_at_k_table(a), want, dtype)
            self.assertEqual(liblora.pass_at_k_table(numpy.asfortranarray(a)), want, dtype)
        rows = [numpy.array(r, dtype=numpy.bool_) for r in correct]
        self.assertEqual(liblora.pass_at_k_table(rows), want)
        self.assertEqual(liblora.pass_at_k_table(numpy.array([[512, 0]]))["correct"], 1)
        with self.assertRaises(ValueError):
            liblora.pass_at_k_table(numpy.array([1, 0, 1]))
        with self.assertRaises(ValueError):
            liblora.pass_at_k_table(numpy.zeros((0, 4), dtype=bool))
        with self.assertRaises(TypeError):
            liblora.pass_at_k_table(numpy.array([[0.5, 1.0]]))

    def test_table_misuse(self):
        with self.assertRaises(ValueError) as e:
            liblora.pass_at_k_table([[1, 0, 1], [1, 0]])
        self.assertIn("question 1 has 2 rollouts", str(e.exception))
        for bad in ([], [[]], [1, 0, 1]):
            with self.assertRaises(ValueError, msg=bad):
                liblora.pass_at_k_table(bad)
        for bad in ([[1, 0.5]], [["1", 0]], [[None]], "1010"):
            with self.assertRaises(TypeError, msg=bad):
                liblora.pass_at_k_table(bad)

    def test_misuse(self):
        for n, c, k in ((3, 1, 4), (3, 1, 0), (3, 4, 1), (0, 0, 1)):
            with self.assertRaises(liblora.LoraInvalidArgumentError) as e:
                liblora.pass_at_k(n, c, k)
            self.assertIn("lora_pass_at_k", e.exception.message)
            self.assertEqual(e.exception.status_name, "LORA_ERR_INVALID_ARGUMENT")
        with self.assertRaises(liblora.LoraInvalidArgumentError) as e:
            liblora.pass_at_k(5, -1, 2)
        self.assertIn("c = -1", e.exception.message)
        with self.assertRaises(TypeError):
            liblora.pass_at_k(5.0, 1, 2)


@needs("lora_forecast_metrics")
class Forecast(unittest.TestCase):
    def test_by_hand(self):
        pred, truth = [1.0, 2.5, 2.0, 5.0], [1.0, 2.0, 3.0, 4.0]
        m = liblora.forecast_metrics(pred, truth)
        # errors 0, 0.5, -1, 1; truth mean 2.5, SS_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5
        self.assertAlmostEqual(m["mse"], (0 + 0.25 + 1 + 1) / 4, delta=1e-12)
        self.assertAlmostEqual(m["mae"], (0 + 0.5 + 1 + 1) / 4, delta=1e-12)
        self.assertAlmostEqual(m["r2"], 1 - 2.25 / 5, delta=1e-12)
        self.assertEqual(set(m), {"mse", "mae", "r2"})

    def test_flattened_and_constant(self):
        pred, truth = [[1.0, 2.0], [3.0, 5.0]], [1.0, 2.0, 3.0, 4.0]
        m = liblora.forecast_metrics(pred, truth)
        self.assertAlmostEqual(m["mse"], 0.25, delta=1e-12)
        self.assertAlmostEqual(m["mae"], 0.25, delta=1e-12)
        self.assertAlmostEqual(m["r2"], 1 - 1 / 5, delta=1e-12)
        self.assertEqual(liblora.forecast_metrics([2, 2, 2], [2, 2, 2])["r2"], 1.0)
        self.assertEqual(liblora.forecast_metrics([2, 2, 3], [2, 2, 2])["r2"], 0.0)
        import array
        self.assertEqual(liblora.forecast_metrics(array.array("d", [1, 2.5, 2, 5]),
                                                  (1, 2, 3, 4)),
                         liblora.forecast_metrics([1, 2.5, 2, 5], [1, 2, 3, 4]))

    @needs_numpy
    def test_numpy(self):
        pred = numpy.array([[1.0, 2.0], [3.0, 5.0]])
        truth = numpy.array([1, 2, 3, 4], dtype=numpy.int32)
        self.assertEqual(liblora.forecast_metrics(pred, truth),
                         liblora.forecast_metrics([1, 2, 3, 5], [1, 2, 3, 4]))
        self.assertEqual(liblora.forecast_metrics(pred.T, truth.reshape(2, 2).T),
                         liblora.forecast_metrics([1, 3, 2, 5], [1, 3, 2, 4]))

    def test_misuse(self):
        with self.assertRaises(ValueError):
            liblora.forecast_metrics([1, 2, 3], [1, 2])
        with self.assertRaises(liblora.LoraInvalidArgumentError):
            liblora.forecast_metrics([], [])
        with self.assertRaises(liblora.LoraNumericError) as e:
            liblora.forecast_metrics([1, float("nan")], [1, 2])
        self.assertIn("lora_forecast_metrics", e.exception.message)
        with self.assertRaises(liblora.LoraNumericError):
            liblora.forecast_metrics([1, 2], [float("inf"), 2])


@needs("lora_flops_json")
@needs_path(QWEN05)
class Flops(unittest.TestCase):
    def test_qwen05_documented_counts(self):
        f = liblora.flops(config=QWEN05, lora=ALL_LINEAR_R16, context=1024, batch=8)
        self.assertEqual(f["forward"]["per_token"], 1049602048)
        self.assertEqual(f["forward"]["adapter"], 17596416)
        self.assertEqual(f["adapter_parameters"], 8798208)
        self.assertEqual(f["train"]["mode"], "adapters")
        self.assertEqual(f["train"]["per_token"], 2160883712)
        self.assertEqual(f["tokens_per_step"], 8192)
        self.assertEqual(f["forward"]["per_step"], 1049602048 * 8192)
        self.assertEqual(f["rule_of_thumb"], {"forward_2N": 988065536, "train_6N": 2964196608})
        full = liblora.flops(config=QWEN05, context=1024)
        self.assertEqual(full["train"]["mode"], "full")
        self.assertEqual(full["forward"]["per_token"], 1032005632)
        self.assertEqual(full["train"]["per_token"], 3096016896)
        self.assertEqual(full["adapter_parameters"], 0)

    def test_config_forms_agree(self):
        path = os.path.join(QWEN05, "config.json")
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        want = liblora.flops(config=path, lora=ALL_LINEAR_R16, context=512, batch=2)
        for config in (QWEN05, text, json.loads(text)):
            self.assertEqual(liblora.flops(config=config, lora=ALL_LINEAR_R16, context=512,
                                           batch=2), want)
        self.assertEqual(liblora.flops(config=path, lora=json.dumps(ALL_LINEAR_R16),
                                       context=512, batch=2), want)
        import pathlib
        self.assertEqual(liblora.flops(config=pathlib.Path(QWEN05), lora=ALL_LINEAR_R16,
                                       context=512, batch=2), want)
        # {} is PEFT's default adapter (r 8 on q and v), not "no adapter"
        default = liblora.flops(config=path, lora={}, context=512)
        self.assertEqual(default["train"]["mode"], "adapters")
        self.assertEqual(default["adapter_parameters"], 24 * 8 * ((896 + 896) + (896 + 128)))

    def test_loaded_model_by_hand(self):
        with liblora.Model(QWEN2) as m:
            info = m.info()
            f = liblora.flops(m, context=64)
            self.assertEqual(liblora.flops(config=QWEN2, context=64), f)
            with_adapter = liblora.flops(m, lora={"r": 4, "target_modules": ["q_proj", "v_proj"]},
                                         context=64, batch=3)
        C, I, L = info["hidden_size"], info["intermediate_size"], info["num_hidden_layers"]
        H, KVH, D, V = (info["num_attention_heads"], info["num_key_value_heads"],
                        info["head_dim"], info["vocab_size"])
        shapes = {"q_proj": (C, H * D), "k_proj": (C, KVH * D), "v_proj": (C, KVH * D),
                  "o_proj": (H * D, C), "gate_proj": (C, I), "up_proj": (C, I),
                  "down_proj": (I, C)}
        per_layer = {name: 2 * i * o for name, (i, o) in shapes.items()}
        projections = L * sum(per_layer.values())
        lm_head = 2 * C * V
        attention = L * 2 * H * D * (64 + 1)
        fw = f["forward"]
        self.assertEqual(fw["per_layer"], per_layer)
        self.assertEqual((fw["projections"], fw["lm_head"], fw["attention"]),
                         (projections, lm_head, attention))
        self.assertEqual(fw["attention_full_context"], L * 4 * H * D * 64)
        self.assertEqual(fw["per_token"], projections + lm_head + attention)
        self.assertEqual(f["train"]["per_token"], 3 * fw["per_token"])
        adapter = L * 2 * 4 * sum(shapes[p][0] + shapes[p][1] for p in ("q_proj", "v_proj"))
        wa = with_adapter["forward"]
        self.assertEqual(wa["adapter"], adapter)
        self.assertEqual(with_adapter["train"]["per_token"],
                         2 * (projections + lm_head) + 3 * attention + 3 * adapter)
        self.assertEqual(with_adapter["train"]["per_step"],
                         with_adapter["train"]["per_token"] * 3 * 64)

    def test_misuse(self):
        with liblora.Model(QWEN2) as m:
            with self.assertRaises(liblora.LoraInvalidArgumentError) as e:
                liblora.flops(m, config=QWEN2, context=16)
            self.assertIn("not both", e.exception.message)
            with self.assertRaises(liblora.LoraRangeError) as e:
                liblora.flops(m, context=257)
            self.assertIn("max_position_embeddings", e.exception.message)
            with self.assertRaises(liblora.LoraConfigError) as e:
                liblora.flops(m, lora={"r": 4, "colour": "blue"}, context=16)
            self.assertIn("colour", e.exception.message)
            with self.assertRaises(liblora.LoraInvalidArgumentError):
                liblora.flops(m, context=0)
            with self.assertRaises(liblora.LoraInvalidArgumentError):
                liblora.flops(m, context=16, batch=-1)
        with self.assertRaises(liblora.LoraStateError):
            liblora.flops(m, context=16)
        with self.assertRaises(liblora.LoraInvalidArgumentError) as e:
            liblora.flops(context=16)
        self.assertIn("neither", e.exception.message)
        with self.assertRaises(liblora.LoraFormatError):
            liblora.flops(config="{not json", context=16)
        with self.assertRaises(TypeError):
            liblora.flops(QWEN2)  # context is required
        with self.assertRaises(TypeError):
            liblora.flops(config=42, context=16)
        with self.assertRaises(TypeError):
            liblora.flops(config=QWEN05, lora=8, context=16)
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(FileNotFoundError):
                liblora.flops(config=d, context=16)


@needs("lora_mfu")
class Mfu(unittest.TestCase):
    def test_values(self):
        achieved, fraction = liblora.mfu(2.16e9, 1e5, 989e12)
        self.assertAlmostEqual(achieved, 2.16e14, delta=1.0)
        self.assertAlmostEqual(fraction, 2.16e14 / 989e12, delta=1e-15)
        self.assertEqual(liblora.mfu(0, 1000, 1e12), (0.0, 0.0))
        self.assertEqual(liblora.mfu(3, 4, 24), (12.0, 0.5))

    def test_misuse(self):
        for args in ((1e9, 1e3, 0), (-1, 1e3, 1e12), (1e9, -1, 1e12), (1e9, 1e3, -5)):
            with self.assertRaises(liblora.LoraInvalidArgumentError, msg=args) as e:
                liblora.mfu(*args)
            self.assertIn("lora_mfu", e.exception.message)
        for args in ((float("nan"), 1, 1), (1, float("inf"), 1), (1e300, 1e300, 1)):
            with self.assertRaises(liblora.LoraNumericError, msg=args):
                liblora.mfu(*args)
        with self.assertRaises(TypeError):
            liblora.mfu("fast", 1, 1)


if __name__ == "__main__":
    unittest.main()
