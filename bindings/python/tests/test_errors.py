"""Statuses become exceptions carrying lora_last_error(); the loader's failures are clear."""

import os
import subprocess
import sys
import tempfile
import unittest

from support import QWEN2, ROOT, liblora


class Errors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = liblora.Model(QWEN2)

    def test_missing_folder_is_io_error_naming_the_path(self):
        missing = os.path.join(tempfile.gettempdir(), "liblora-no-such-model")
        with self.assertRaises(liblora.LoraIOError) as e:
            liblora.Model(missing)
        err = e.exception
        self.assertIsInstance(err, liblora.LoraError)
        self.assertEqual(err.status, 3)
        self.assertEqual(err.status_name, "LORA_ERR_IO")
        self.assertIn(missing, err.message)
        self.assertIn("lora_model_load", err.message)
        self.assertIn(missing, str(err))

    def test_bad_keyword_is_config_error_naming_the_key(self):
        cases = [
            lambda: liblora.Model(QWEN2, colour="blue"),
            lambda: self.m.session(colour="blue"),
            lambda: liblora.Sampler(colour="blue"),
            lambda: liblora.Adapter.create(self.m, colour="blue"),
        ]
        for make in cases:
            with self.assertRaises(liblora.LoraConfigError) as e:
                make()
            self.assertEqual(e.exception.status, 5)
            self.assertIn("colour", e.exception.message)

    def test_bad_value_names_the_key(self):
        with self.assertRaises(liblora.LoraConfigError) as e:
            liblora.Sampler(top_p=1.5)
        self.assertIn("top_p", e.exception.message)
        with self.assertRaises(liblora.LoraConfigError) as e:
            self.m.session(max_context=-3)
        self.assertIn("max_context", e.exception.message)

    def test_optimizer_without_adapters_is_state_error(self):
        with self.m.session() as s, self.assertRaises(liblora.LoraStateError):
            liblora.Optimizer(s)

    def test_token_out_of_range(self):
        with self.m.session() as s:
            with self.assertRaises(liblora.LoraRangeError) as e:
                s.logits([[1, 2, 384]])
            self.assertTrue(e.exception.message)
            with self.assertRaises(liblora.LoraRangeError):
                s.append([-1])
            self.assertEqual(s.position, 0)  # nothing appended

    def test_bad_adapter_folder(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "adapter_config.json"), "w") as f:
                f.write("{not json")
            with self.assertRaises((liblora.LoraFormatError, liblora.LoraIOError)) as e:
                liblora.Adapter.load(self.m, d)
            self.assertTrue(e.exception.message)

    def test_every_status_has_its_class(self):
        from liblora._errors import error_for
        names = {}
        for st in range(1, 15):
            err = error_for(st, "m")
            self.assertEqual(err.status, st)
            self.assertIsInstance(err, liblora.LoraError)
            self.assertIsNot(type(err), liblora.LoraError)
            self.assertEqual(err.status_name,
                             liblora._lib.lora_status_string(st).decode())
            names[type(err)] = st
        self.assertEqual(len(names), 14)
        self.assertIs(type(error_for(99, "m")), liblora.LoraError)

    def test_errors_are_per_thread(self):
        # lora_last_error is thread-local: a failure in one thread, read in another, is not mixed.
        import threading
        caught = []

        def fail(path):
            try:
                liblora.Model(path)
            except liblora.LoraError as e:
                caught.append((path, e.message))

        threads = [threading.Thread(target=fail, args=("/nonexistent/%d" % i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(caught), 4)
        for path, message in caught:
            self.assertIn(path, message)

    def test_missing_function_is_unsupported(self):
        from liblora._lib import Library

        class Empty:
            pass

        stub = Library(Empty(), "stub.so")
        self.assertFalse(stub.has("lora_tokenizer_load"))
        with self.assertRaises(liblora.LoraUnsupportedError) as e:
            stub.lora_tokenizer_load
        self.assertIn("lora_tokenizer_load", e.exception.message)
        with self.assertRaises(AttributeError):
            stub.not_a_function


class Loading(unittest.TestCase):
    def run_python(self, code, **env):
        full = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"), **env)
        return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                              text=True, timeout=120)

    def test_liblora_path_folder_and_file(self):
        lib_dir = os.path.join(ROOT, "lib")
        for value in (lib_dir, os.path.join(lib_dir, "liblora.so.0")):
            r = self.run_python("import liblora; print(liblora.library_path, liblora.version())",
                                LIBLORA_PATH=value)
            self.assertEqual(r.returncode, 0, r.stderr)
            path, version = r.stdout.split()
            self.assertEqual(os.path.realpath(path),
                             os.path.realpath(os.path.join(lib_dir, "liblora.so.0")))
            self.assertEqual(version, liblora.version())

    def test_bad_liblora_path_is_a_clear_import_error(self):
        r = self.run_python("import liblora", LIBLORA_PATH="/nonexistent/liblora.so.0")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("/nonexistent/liblora.so.0", r.stderr)
        self.assertIn("LIBLORA_PATH", r.stderr)

    def test_versions(self):
        self.assertEqual(liblora.abi_version(), liblora.ABI_VERSION)
        major, minor, patch = liblora.version_info()
        self.assertEqual(liblora.version(), "%d.%d.%d" % (major, minor, patch))


if __name__ == "__main__":
    unittest.main()
