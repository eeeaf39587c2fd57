#!/usr/bin/env python3
"""make parity: liblora against transformers + PEFT (models.py) and Hugging Face tokenizers
(tokenizer_parity.py). Prints one table; exits 1 on any mismatch.

Usage, from the repository root, with the harness's venv (make parity sets it up):
    build/parity-venv/bin/python tests/parity/run.py [--only models|tokenizer] [--strings N]
        [--work DIR]
"""

import os

os.environ.setdefault("RAYON_NUM_THREADS", "2")  # tokenizers' pool: the harness uses 2 cores

import argparse
import platform
import shutil
import sys
import tempfile
import time
import warnings

import torch

from common import ROOT, THREADS, Table, liblora


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["models", "tokenizer"])
    ap.add_argument("--strings", type=int, default=100000,
                    help="tokenizer strings (default 100000)")
    ap.add_argument("--work", help="keep the checkpoints and adapters in this folder")
    ap.add_argument("--real", default=os.path.join(ROOT, "build", "real-model",
                                                   "smollm2-135m-instruct"),
                    help="a real checkpoint checked too, when present (make real-model's)")
    args = ap.parse_args()

    torch.set_num_threads(THREADS)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import transformers.utils.logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    import peft
    import tokenizers
    import transformers
    print("liblora %s (%s); torch %s, transformers %s, peft %s, tokenizers %s; python %s; "
          "%d threads" % (liblora.version(), os.path.relpath(liblora.library_path, ROOT),
                          torch.__version__, transformers.__version__, peft.__version__,
                          tokenizers.__version__, platform.python_version(), THREADS))
    table = Table()
    work = args.work or tempfile.mkdtemp(prefix="parity-")
    t0 = time.time()
    try:
        if args.only in (None, "models"):
            import models
            real = args.real if os.path.isdir(args.real) else None
            if not real:
                print("parity: no %s (make real-model): the real model is not checked"
                      % os.path.relpath(args.real, ROOT))
            models.run(table, os.path.join(work, "models"), real=real)
        if args.only in (None, "tokenizer"):
            import tokenizer_parity
            tokenizer_parity.run(table, args.strings)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(table.render())
    bad = table.failed()
    print("parity: %d checks, %d failed (%.0f s)" % (len(table.rows), len(bad), time.time() - t0))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
