"""`pip install bindings/python` gives a package that works outside the repository."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from support import QWEN2, ROOT


def can_build_offline():
    # setuptools before 70.1 builds wheels only with the separate `wheel` package.
    try:
        import setuptools
    except ImportError:
        return False, "setuptools is not installed"
    version = tuple(int(p) for p in setuptools.__version__.split(".")[:2] if p.isdigit())
    if version < (61, 0):
        return False, "setuptools %s is older than 61" % setuptools.__version__
    if version < (70, 1):
        try:
            import wheel  # noqa: F401
        except ImportError:
            return False, ("setuptools %s needs the wheel package to build offline "
                           "(--no-build-isolation), and it is not installed"
                           % setuptools.__version__)
    return True, ""


OFFLINE, WHY_NOT = can_build_offline()


@unittest.skipUnless(OFFLINE, WHY_NOT)
class Packaging(unittest.TestCase):
    def test_pip_install_target(self):
        target = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, target)
        build = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
             "--no-index", "--quiet", "--target", target, os.path.join(ROOT, "bindings", "python")],
            capture_output=True, text=True, timeout=300, cwd=target)
        self.assertEqual(build.returncode, 0, build.stdout + build.stderr)
        self.assertTrue(os.path.exists(os.path.join(target, "liblora", "__init__.py")))
        code = ("import liblora\n"
                "print(liblora.__file__)\n"
                "m = liblora.Model(%r)\n"
                "print(len(m.session().generate([1, 2, 3], max_new_tokens=4)))\n" % QWEN2)
        env = dict(os.environ, PYTHONPATH=target, LIBLORA_PATH=os.path.join(ROOT, "lib"))
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=120, cwd=target)
        self.assertEqual(run.returncode, 0, run.stderr)
        where, count = run.stdout.split()
        self.assertTrue(where.startswith(target), where)
        self.assertEqual(count, "4")


if __name__ == "__main__":
    unittest.main()
