#!/bin/sh
# Smoke tests of the C examples built by make (build/examples/): each runs on small models and
# its output is checked. Usage: tests/run_examples.sh RESULT_FILE bin/lora
result=$1; lora=$2
passed=0; failed=0
ex=build/examples
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
check() { # NAME STATUS OUTPUT_FILE PATTERN
    if [ "$2" -eq 0 ] && grep -Eq -- "$4" "$3"; then echo "ok - $1"; passed=$((passed + 1))
    else echo "FAIL - $1 (exit $2): $(tail -n 3 "$3")"; failed=$((failed + 1)); fi
}

# a model with the real Qwen tokenizer's vocabulary, small enough to train in a second
cat > "$tmp/cfg.json" <<'JSON'
{"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 32, "intermediate_size": 64,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "max_position_embeddings": 512, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
 "tie_word_embeddings": true}
JSON
"$lora" init --config "$tmp/cfg.json" --out "$tmp/tq" --seed 2 >/dev/null
cp tests/fixtures/qwen-tokenizer/tokenizer.json tests/fixtures/qwen-tokenizer/tokenizer_config.json "$tmp/tq/"

"$ex/generate_ids" tests/fixtures/tiny-qwen2 >"$tmp/o" 2>&1
check "generate_ids" $? "$tmp/o" '^[0-9]+( [0-9]+){15}$'
"$ex/generate" "$tmp/tq" 'What is "2 + 2"?' >"$tmp/o" 2>&1
check "generate: greedy, streamed" $? "$tmp/o" '^\[[0-9]+ prompt tokens, [0-9]+ generated\]$'
"$ex/generate" "$tmp/tq" 'Tell me a story' 0.8 0.9 7 >"$tmp/o" 2>&1
check "generate: sampled" $? "$tmp/o" '^\[[0-9]+ prompt tokens, [0-9]+ generated\]$'
"$ex/finetune" "$tmp/tq" tests/fixtures/data/chat.jsonl "$tmp/adapter" 2 >"$tmp/o" 2>&1
check "finetune: trains and saves a PEFT adapter" $? "$tmp/o" "^saved the adapter to $tmp/adapter$"
[ -f "$tmp/adapter/adapter_model.safetensors" ] && [ -f "$tmp/adapter/adapter_config.json" ]
check "finetune: the adapter folder" $? "$tmp/o" 'epoch 2: mean loss [0-9.]+'
"$ex/merge" "$tmp/tq" "$tmp/adapter" "$tmp/merged" >"$tmp/o" 2>&1
check "merge: the finetuned adapter" $? "$tmp/o" 'largest logit change on the probe: [0-9.e-]+$'
"$lora" info --model "$tmp/merged" >"$tmp/o" 2>&1
check "merge: the result loads" $? "$tmp/o" '^architecture: qwen2$'
"$ex/hotswap" tests/fixtures/tiny-qwen2 tests/fixtures/tiny-qwen2/adapter tests/fixtures/tiny-qwen2/adapter >"$tmp/o" 2>&1
check "hotswap: 4 threads, adapters reloaded mid-way, answers equal the sequential ones" $? "$tmp/o" \
    '24 of 24 equal the sequential answers$'
"$ex/hotswap" tests/fixtures/tiny-qwen2 "$tmp/no-such-adapter" >"$tmp/o" 2>&1
[ $? -ne 0 ] && grep -q "no-such-adapter" "$tmp/o"
check "hotswap: a missing adapter folder is reported" $? "$tmp/o" 'no-such-adapter'

echo "$passed $failed 0" > "$result"
echo "examples: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
