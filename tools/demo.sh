#!/bin/sh
# make demo: the main job on the embedded default model (models/tiny), with only bin/lora and
# the C examples. Shows the base model's answers, trains two LoRA adapters (arithmetic with
# \boxed{} answers; predator-prey forecasting as text), compares held-out metrics base versus
# adapter, saves both adapters in PEFT's format, merges one, and serves requests in one process
# while swapping between the two at runtime.
#
#   tools/demo.sh OUT_DIR [--quick]
#
# --quick runs the same steps on fewer questions and epochs (the test suite's smoke run).
set -eu
out=${1:?usage: tools/demo.sh OUT_DIR [--quick]}
quick=${2:-}
lora=bin/lora
model=models/tiny
data=$model/data
mkdir -p "$out"

if [ "$quick" = --quick ]; then
    questions=12; rollouts=2; epochs=1; lv_train=16; lv_epochs=1
else
    questions=100; rollouts=4; epochs=3; lv_train=320; lv_epochs=3
fi
head -n "$questions" "$data/arith_test.jsonl" > "$out/arith_test.jsonl"

section() { printf '\n== %s\n' "$1"; }
# the "accuracy" field of `lora eval --answers --json`
accuracy() { sed -E 's/.*"accuracy": ([0-9.]+).*/\1/' "$1"; }

section "the model: $model (pretrained from scratch by liblora; make tiny-model)"
$lora info --model "$model" | grep -E '^(architecture|parameters|num_hidden_layers|hidden_size|vocab_size):'

section "1. the base model answers arithmetic questions (it never saw this chat format)"
$lora eval --model "$model" --answers "$out/arith_test.jsonl" --show 3 --rollouts "$rollouts" \
    --temperature 0.7 --seed 1
$lora eval --model "$model" --answers "$out/arith_test.jsonl" --json > "$out/base_arith.json"

section "2. LoRA on arithmetic: r 16 on all linear layers, $epochs epochs"
$lora train --model "$model" --data "$data/arith_train.jsonl" --out "$out/arith" \
    --epochs "$epochs" --batch-size 8 --grad-accum 1 --lr 3e-3 --lora-r 16 --lora-alpha 32 \
    --lora-dropout 0 --warmup-ratio 0.05 --eval-split 0.05 --seed 1

section "3. the adapter answers the same held-out questions"
$lora eval --model "$model" --answers "$out/arith_test.jsonl" --adapter "$out/arith" --show 3 \
    --rollouts "$rollouts" --temperature 0.7 --seed 1
$lora eval --model "$model" --answers "$out/arith_test.jsonl" --adapter "$out/arith" --json \
    > "$out/tuned_arith.json"

section "4. forecasting Lotka-Volterra predator-prey series as text (LLMTIME), LoRA on q and v"
build/examples/forecast "$model" "$out/lv" "$lv_train" "$lv_epochs" | tee "$out/forecast.txt"

section "5. merge the arithmetic adapter into a plain Hugging Face folder"
$lora merge --model "$model" --adapter "$out/arith" --out "$out/merged"
$lora eval --model "$out/merged" --answers "$out/arith_test.jsonl" --json > "$out/merged_arith.json"
echo "merged model's accuracy: $(accuracy "$out/merged_arith.json") (adapter: $(accuracy "$out/tuned_arith.json"))"

section "6. one process, one base model, adapters swapped per request"
context=$(sed -n 's/^context: //p' "$out/lv/first_context.txt")
printf '%s\n' "What is 47 + 38?" "/adapter 2" "/raw $context" "/adapter none" \
    "What is 47 + 38?" "/adapter 1" "What is 91 - 56?" "/quit" |
    $lora chat --model "$model" --adapter "$out/arith" --adapter "$out/lv/adapter" \
        --max-new-tokens 40

section "summary"
base=$(accuracy "$out/base_arith.json"); tuned=$(accuracy "$out/tuned_arith.json")
awk -v b="$base" -v t="$tuned" 'BEGIN { printf "arithmetic accuracy: base %.1f%%, adapter %.1f%% (%+.1f points)\n", 100 * b, 100 * t, 100 * (t - b) }'
grep -E '^(base|adapter) ' "$out/forecast.txt" | awk '{ printf "forecast %-8s MSE %s  MAE %s  R^2 %s\n", $1, $2, $3, $4 }'
echo "adapters (PEFT format): $out/arith, $out/lv/adapter; merged model: $out/merged"
echo "plots: $out/arith/loss.svg (training loss), $out/lv/forecast.svg (a forecast against the truth)"
