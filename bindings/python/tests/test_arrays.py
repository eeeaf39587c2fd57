"""Inputs as nested lists, array.array, buffers and numpy arrays; results as lists or numpy."""

import array
import math
import unittest

from support import QWEN2, liblora, needs_numpy, numpy

ROWS = [[3, 14, 15, 92, 65], [35, 89, 79, 32, 38]]


class Arrays(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = liblora.Model(QWEN2)
        cls.s = cls.m.session()
        cls.ref = cls.s.logits(ROWS)

    def test_tuples_and_generators(self):
        self.assertEqual(self.s.logits(tuple(tuple(r) for r in ROWS)), self.ref)
        self.assertEqual(self.s.logits([iter(r) for r in ROWS]), self.ref)

    def test_array_and_memoryview(self):
        flat = array.array("i", [t for r in ROWS for t in r])
        self.assertEqual(self.s.logits(memoryview(flat).cast("B").cast("i", (2, 5))), self.ref)
        self.assertEqual(self.s.logits([array.array("i", r) for r in ROWS]), self.ref)
        # a 1-D buffer where a batch is expected is a batch of one
        one = self.s.logits(array.array("i", ROWS[1]))
        self.assertEqual(len(one), 1)
        self.assertEqual(one, self.s.logits([ROWS[1]]))
        # other integer formats are converted
        self.assertEqual(self.s.logits([array.array("q", r) for r in ROWS]), self.ref)
        self.assertEqual(self.s.logits([bytes(r) for r in ROWS]), self.ref)

    def test_ragged_rows_are_padded_with_lengths(self):
        ragged = self.s.logits([ROWS[0], ROWS[1][:3]])
        self.assertEqual(ragged[0], self.ref[0])
        short = self.s.logits([ROWS[1][:3]])[0]
        for got, want in zip(ragged[1][:3], short):  # batch shapes may differ in rounding
            self.assertTrue(all(math.isclose(g, w, abs_tol=1e-5) for g, w in zip(got, want)))
        self.assertEqual(ragged[1][3], [0.0] * 384)  # padded rows are 0
        explicit = self.s.logits(ROWS, lengths=[5, 3])
        self.assertEqual(explicit, ragged)

    def test_logprobs_agree_with_logits(self):
        lp = self.s.logprobs(ROWS)
        self.assertEqual(lp[0][0], 0.0)
        for b in range(2):
            for t in range(1, 5):
                row = self.ref[b][t - 1]
                top = max(row)
                lse = top + math.log(sum(math.exp(v - top) for v in row))
                self.assertAlmostEqual(lp[b][t], row[ROWS[b][t]] - lse, places=4)
        loss, n = self.s.loss(ROWS, with_count=True)
        self.assertEqual(n, 8)
        self.assertAlmostEqual(loss, -sum(lp[0][1:] + lp[1][1:]) / 8, places=4)

    def test_labels_minus_100_not_counted(self):
        labels = [[-100, -100, 15, 92, 65], ROWS[1]]
        loss, n = self.s.loss(ROWS, labels, with_count=True)
        self.assertEqual(n, 7)
        with self.assertRaises(ValueError):
            self.s.loss(ROWS, [[1, 2]])

    def test_wrong_types(self):
        with self.assertRaises(TypeError):
            self.s.logits([[1.5, 2]])
        with self.assertRaises(TypeError):
            self.s.logits([["a"]])
        with self.assertRaises(OverflowError):
            self.s.logits([[2 ** 40]])
        with self.assertRaises(ValueError):
            self.s.logits([])
        if numpy is None:
            with self.assertRaises(ImportError):
                self.s.logits(ROWS, as_numpy=True)
        with self.assertRaises(TypeError):
            self.s.logits([[[1, 2]]])

    def test_sampler_takes_buffers(self):
        smp = liblora.Sampler()
        logits = array.array("f", [0.0] * 384)
        logits[77] = 5.0
        self.assertEqual(smp.sample(logits), 77)
        self.assertEqual(smp.sample(list(logits)), 77)
        self.assertEqual(smp.sample(memoryview(logits)), 77)
        with self.assertRaises(liblora.LoraNumericError):
            smp.sample([float("nan")] * 4)


@needs_numpy
class Numpy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = liblora.Model(QWEN2)
        cls.s = cls.m.session()
        cls.ref = cls.s.logits(ROWS)

    def test_numpy_in_numpy_out(self):
        for dtype in (numpy.int32, numpy.int64, numpy.uint16):
            out = self.s.logits(numpy.array(ROWS, dtype=dtype))
            self.assertIsInstance(out, numpy.ndarray)
            self.assertEqual(out.dtype, numpy.float32)
            self.assertEqual(out.shape, (2, 5, 384))
            self.assertEqual(out.tolist(), self.ref)
        lp = self.s.logprobs(numpy.array(ROWS))
        self.assertEqual(lp.shape, (2, 5))

    def test_non_contiguous_and_flags(self):
        wide = numpy.array([[t, 0] for r in ROWS for t in r], dtype=numpy.int64)[:, 0]
        out = self.s.logits(wide.reshape(2, 5))
        self.assertEqual(out.tolist(), self.ref)
        self.assertIsInstance(self.s.logits(ROWS, as_numpy=True), numpy.ndarray)
        self.assertIsInstance(self.s.logits(numpy.array(ROWS), as_numpy=False), list)

    def test_generate_and_rows_of_numpy(self):
        self.s.reset()
        ids = self.s.generate(numpy.array([1, 2, 3]), max_new_tokens=4)
        self.assertIsInstance(ids, numpy.ndarray)
        self.assertEqual(ids.dtype, numpy.int32)
        self.s.reset()
        self.assertEqual(ids.tolist(), self.s.generate([1, 2, 3], max_new_tokens=4))
        self.assertEqual(self.s.logits([numpy.array(r) for r in ROWS]), self.ref)

    def test_numpy_errors(self):
        with self.assertRaises(TypeError):
            self.s.logits(numpy.array([[1.0, 2.0]]))
        with self.assertRaises(OverflowError):
            self.s.logits(numpy.array([[2 ** 40]]))
        with self.assertRaises(ValueError):
            self.s.logits(numpy.zeros((1, 2, 3), dtype=numpy.int32))

    def test_sampler_numpy_logits(self):
        logits = numpy.zeros(384, dtype=numpy.float64)
        logits[12] = 3.0
        self.assertEqual(liblora.Sampler().sample(logits), 12)


if __name__ == "__main__":
    unittest.main()
