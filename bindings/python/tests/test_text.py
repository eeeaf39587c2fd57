"""Tokenizer, Detokenizer, chat templates, few-shot prompts, datasets and LLMTIME.

These C functions arrive on other branches: each test skips, visibly, while the loaded build
lacks them, and runs once it has them.
"""

import json
import os
import shutil
import tempfile
import unittest

from support import QWEN2, TOKENIZER, liblora, needs, needs_numpy, needs_path, numpy

GOLDEN = os.path.join(TOKENIZER, "golden_encodings.jsonl")


def golden():
    with open(GOLDEN, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@needs("lora_tokenizer_load", "lora_tokenizer_encode", "lora_tokenizer_decode")
@needs_path(TOKENIZER)
class TokenizerTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tok = liblora.Tokenizer.load(TOKENIZER)

    def test_golden_encodings(self):
        cases = golden()
        self.assertGreater(len(cases), 10)
        for case in cases:
            self.assertEqual(self.tok.encode(case["text"]), case["ids"], case["text"])
            self.assertEqual(self.tok.decode(case["ids"]), case["decoded"])

    def test_info_and_token_id(self):
        info = self.tok.info()
        self.assertEqual(info["vocab_size"], self.tok.vocab_size)
        self.assertEqual(info["eos_token"], "<|im_end|>")
        self.assertEqual(self.tok.token_id("<|im_end|>"), info["eos_token_id"])
        with self.assertRaises(liblora.LoraRangeError):
            self.tok.token_id("<|no such token|>")

    def test_flags(self):
        marker = "<|im_end|>"
        self.assertEqual(self.tok.encode(marker), [self.tok.token_id(marker)])
        as_text = self.tok.encode(marker, special_as_text=True)
        self.assertGreater(len(as_text), 1)
        self.assertEqual(self.tok.decode(as_text), marker)
        ids = self.tok.encode("Hi" + marker)
        self.assertEqual(self.tok.decode(ids, skip_special=True), "Hi")
        with self.assertRaises(liblora.LoraFormatError):
            self.tok.encode(b"ab\xffcd")
        self.assertEqual(self.tok.decode(self.tok.encode(b"ab\xffcd", utf8_replace=True)),
                         "ab\ufffdcd")

    def test_long_text_grows_the_buffer(self):
        text = "\u0344" * 300 + " tokens " * 200  # NFC turns each U+0344 into two characters
        ids = self.tok.encode(text)
        self.assertEqual(self.tok.decode(ids), text.replace("\u0344", "\u0308\u0301"))

    def test_detokenizer_streams_whole_characters(self):
        text = "Grüße, 世界! 🙂 done"
        ids = self.tok.encode(text)
        with self.tok.detokenizer() as d:
            pieces = [d.push(i) for i in ids]
            pieces.append(d.flush())
        self.assertEqual("".join(pieces), self.tok.decode(ids))
        for p in pieces:
            self.assertNotIn("\ufffd", p)
        self.assertEqual("".join(self.tok.decode_stream(iter(ids))), text)
        with liblora.Detokenizer(self.tok) as d:
            with self.assertRaises(liblora.LoraRangeError):
                d.push(10 ** 8)

    def test_tokenizer_outlives_nothing(self):
        tok = liblora.Tokenizer.load(TOKENIZER)
        d = tok.detokenizer()
        tok.close()  # the detokenizer holds its own reference
        self.assertEqual("".join([d.push(i) for i in self.tok.encode("still here")]),
                         "still here")
        d.close()

    @needs_numpy
    def test_numpy(self):
        ids = self.tok.encode("Hello World", as_numpy=True)
        self.assertEqual(ids.tolist(), [9707, 4337])
        self.assertEqual(self.tok.decode(numpy.array([9707, 4337])), "Hello World")

    def test_missing_folder(self):
        with self.assertRaises(liblora.LoraIOError) as e:
            liblora.Tokenizer.load("/nonexistent/tokenizer")
        self.assertIn("/nonexistent/tokenizer", e.exception.message)

    @needs("lora_model_tokenizer")
    def test_model_tokenizer(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        for name in ("config.json", "model.safetensors"):
            shutil.copy(os.path.join(QWEN2, name), tmp)
        with liblora.Model(tmp) as m, self.assertRaises(liblora.LoraIOError):
            m.tokenizer()
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(TOKENIZER, name), tmp)
        m = liblora.Model(tmp)
        tok = m.tokenizer()
        m.close()
        self.assertEqual(tok.encode("Hello World"), [9707, 4337])


@needs("lora_tokenizer_load", "lora_chat_render", "lora_prompt_few_shot")
@needs_path(TOKENIZER)
class ChatTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tok = liblora.Tokenizer.load(TOKENIZER)

    def test_chat_render_qwen3(self):
        messages = [{"role": "user", "content": "What is 2+2?"}]
        self.assertEqual(self.tok.chat_render(messages),
                         "<|im_start|>user\nWhat is 2+2?<|im_end|>\n")
        self.assertEqual(self.tok.chat_render(messages, add_generation_prompt=True,
                                              enable_thinking=False),
                         "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
                         "<think>\n\n</think>\n\n")
        self.assertEqual(self.tok.chat_render(messages, format="Q: {q} A:"), "Q: What is 2+2? A:")
        with self.assertRaises(liblora.LoraFormatError) as e:
            self.tok.chat_render([{"role": "wizard", "content": "x"}])
        self.assertIn("0", e.exception.message)
        with self.assertRaises(liblora.LoraConfigError) as e:
            self.tok.chat_render(messages, colour="blue")
        self.assertIn("colour", e.exception.message)

    def test_few_shot_plain(self):
        examples = [{"q": "1+1?", "a": "2"}, {"q": "2+2?", "a": "4"}]
        self.assertEqual(self.tok.few_shot(examples, "3+3?", chat=False),
                         "Question: 1+1?\nAnswer: 2\n\nQuestion: 2+2?\nAnswer: 4\n\n"
                         "Question: 3+3?\nAnswer:")
        chat = self.tok.few_shot(examples, "3+3?", enable_thinking=False)
        self.assertTrue(chat.startswith("<|im_start|>user\n1+1?<|im_end|>\n"))
        self.assertTrue(chat.endswith("<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n"
                                      "<think>\n\n</think>\n\n"))


@needs("lora_tokenizer_load", "lora_dataset_load", "lora_dataset_next_batch", "lora_dataset_row",
       "lora_dataset_split", "lora_dataset_stats_json", "lora_dataset_seek")
@needs_path(TOKENIZER)
class DatasetTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tok = liblora.Tokenizer.load(TOKENIZER)
        cls.tmp = tempfile.mkdtemp()
        cls.path = os.path.join(cls.tmp, "train.jsonl")
        lines = [{"text": "sample number %d says hello" % i} for i in range(7)]
        lines += [{"prompt": "Say %d:" % i, "completion": " %d" % i} for i in range(3)]
        with open(cls.path, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_rows_and_stats(self):
        ds = liblora.Dataset.load(self.tok, self.path, shuffle=False, max_length=32)
        self.assertEqual(len(ds), 10)
        st = ds.stats()
        self.assertEqual((st["lines"], st["samples"], st["max_length"]), (10, 10, 32))
        ids, labels, pos = ds.row(0)
        text_ids = self.tok.encode("sample number 0 says hello")
        self.assertEqual(ids[:len(text_ids)], text_ids)
        self.assertEqual(len(ids), len(labels))
        self.assertEqual(pos, list(range(len(ids))))
        ids, labels, _ = ds[-1]  # prompt/completion: the prompt is not in the loss
        self.assertEqual(labels[0], -100)
        self.assertTrue(all(l in (-100, i) for i, l in zip(ids, labels)))
        with self.assertRaises(liblora.LoraRangeError):
            ds.row(10)

    def test_batches_position_seek(self):
        ds = liblora.Dataset.load(self.tok, self.path, seed=3)
        start = ds.position
        first = ds.next_batch(4)
        ids, labels, pos = first
        self.assertEqual(len(ids), 4)
        self.assertTrue(all(len(r) == len(ids[0]) for r in ids + labels + pos))
        ds.next_batch(4)
        last = ds.next_batch(4)
        self.assertEqual(len(last[0]), 2)  # the epoch's end cuts the batch short
        ds.seek(start)
        self.assertEqual(ds.next_batch(4), first)

    def test_packing(self):
        ds = liblora.Dataset.load(self.tok, self.path, packing=True, max_length=64)
        self.assertLess(len(ds), 10)
        ids, labels, pos = ds.next_batch(len(ds))
        # some row holds several samples: its position ids restart, its labels start with -100
        starts = [(b, t) for b, row in enumerate(pos) for t in range(1, len(row)) if row[t] == 0]
        self.assertTrue(starts)
        for b, t in starts:
            self.assertEqual(labels[b][t], -100)

    def test_split(self):
        ds = liblora.Dataset.load(self.tok, self.path)
        train, test = ds.split(0.2, seed=1)
        self.assertEqual((len(train), len(test)), (8, 2))
        ds.close()
        self.assertEqual(len(train.next_batch(3)[0]), 3)
        with self.assertRaises(liblora.LoraConfigError):
            train.split(8)

    def test_errors(self):
        bad = os.path.join(self.tmp, "bad.jsonl")
        with open(bad, "w") as f:
            f.write('{"text": "fine"}\n{"txet": "typo"}\n')
        with self.assertRaises(liblora.LoraFormatError) as e:
            liblora.Dataset.load(self.tok, bad)
        self.assertIn("bad.jsonl:2", e.exception.message)
        lenient = liblora.Dataset.load(self.tok, bad, strict=False)
        self.assertEqual(lenient.stats()["skipped"], 1)
        with self.assertRaises(liblora.LoraConfigError) as e:
            liblora.Dataset.load(self.tok, self.path, colour="blue")
        self.assertIn("colour", e.exception.message)
        with self.assertRaises(liblora.LoraIOError):
            liblora.Dataset.load(self.tok, os.path.join(self.tmp, "missing.jsonl"))


@needs("lora_llmtime_encode", "lora_llmtime_decode")
class LlmtimeTests(unittest.TestCase):
    def test_header_example(self):
        text, alpha = liblora.llmtime_encode([[1, 2], [2, 4], [3, 6]])
        self.assertEqual(text, "1.67,3.33;3.33,6.67;5.00,10.00")
        self.assertAlmostEqual(alpha, 10 / 6)
        values = liblora.llmtime_decode(text, alpha, dims=2)
        self.assertEqual(len(values), 3)
        for row, want in zip(values, [[1, 2], [2, 4], [3, 6]]):
            for v, w in zip(row, want):
                self.assertAlmostEqual(v, w, delta=0.01)

    def test_univariate_and_prefix(self):
        text, alpha = liblora.llmtime_encode([4, 6, 10], decimals=2)
        self.assertEqual(text, "4.00;6.00;10.00")
        self.assertEqual(liblora.llmtime_decode("4.00;6.00;1", alpha, dims=1)[:2],
                         [[4.0], [6.0]])
        self.assertEqual(liblora.llmtime_decode("garbage", 1.0, dims=2), [])
        with self.assertRaises(liblora.LoraNumericError):
            liblora.llmtime_encode([1.0, float("inf")])

    @needs_numpy
    def test_numpy(self):
        text, alpha = liblora.llmtime_encode(numpy.array([[1.0, 2.0], [2.0, 4.0]]))
        out = liblora.llmtime_decode(text, alpha, dims=2, as_numpy=True)
        self.assertEqual(out.shape, (2, 2))


if __name__ == "__main__":
    unittest.main()
