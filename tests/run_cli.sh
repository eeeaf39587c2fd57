#!/bin/sh
# Tests of the lora command line. Usage (from the repository root):
#   tests/run_cli.sh RESULT_FILE bin/lora
# Prints "ok - name" or "FAIL - name" per case, writes "passed failed skipped" to RESULT_FILE and
# exits 1 if any case failed.
result=$1; lora=$2
passed=0; failed=0; skipped=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

pass() { echo "ok - $1"; passed=$((passed + 1)); }
fail() { echo "FAIL - $1: $2"; failed=$((failed + 1)); }

# run CMD...: stdout to $tmp/out, stderr to $tmp/err, exit status to $rc.
run() { timeout 300 "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?; }

# expect_ok NAME PATTERN: status 0, nothing on stderr, a stdout line matching the ERE PATTERN.
expect_ok() {
    if [ "$rc" -ne 0 ]; then fail "$1" "exit $rc: $(head -n 1 "$tmp/err")"
    elif [ -s "$tmp/err" ]; then fail "$1" "stderr: $(head -n 1 "$tmp/err")"
    elif ! grep -Eq -- "$2" "$tmp/out"; then fail "$1" "no line matching '$2' in: $(head -c 300 "$tmp/out")"
    else pass "$1"; fi
}

# expect_error NAME STATUS PATTERN: exit STATUS, empty stdout, exactly one stderr line that
# starts with "lora" and matches PATTERN.
expect_error() {
    if [ "$rc" -ne "$2" ]; then fail "$1" "exit $rc, expected $2 (stderr: $(head -n 1 "$tmp/err"))"
    elif [ -s "$tmp/out" ]; then fail "$1" "unexpected stdout: $(head -n 1 "$tmp/out")"
    elif [ "$(wc -l < "$tmp/err")" -ne 1 ]; then fail "$1" "stderr is not one line: $(cat "$tmp/err")"
    elif ! grep -Eq -- "^lora.*$3" "$tmp/err"; then fail "$1" "stderr lacks '$3': $(cat "$tmp/err")"
    else pass "$1"; fi
}

# --- version and help ----------------------------------------------------------------------------
run "$lora" --version
expect_ok "lora --version" '^lora [0-9]+\.[0-9]+\.[0-9]+'
run "$lora" version
expect_ok "lora version" '^lora [0-9]+\.[0-9]+\.[0-9]+'
run "$lora" --help
expect_ok "lora --help" '^usage: lora'
for cmd in info init import generate chat train eval merge bench tokenize; do
    run "$lora" "$cmd" --help
    expect_ok "lora $cmd --help" "^usage: lora $cmd"
done

# --- info ----------------------------------------------------------------------------------------
# tiny-qwen2: vocab 384, hidden 64, intermediate 160, 2 layers, 4 heads, 2 kv heads (head_dim 16,
# kv width 32), tied embeddings, q/k/v bias.
#   embed_tokens 384*64                                   = 24,576
#   per layer: q 64*64+64 = 4,160; k, v 32*64+32 = 2,080 each; o 64*64 = 4,096;
#              gate, up, down 64*160 = 10,240 each; two norms 64 each      = 43,264
#   2 layers = 86,528; final norm 64                      -> 24,576 + 86,528 + 64 = 111,168
run "$lora" info --model tests/fixtures/tiny-qwen2
expect_ok "info tiny-qwen2: parameter count" '^parameters: 111,168$'
run "$lora" info --model tests/fixtures/tiny-qwen2
expect_ok "info tiny-qwen2: architecture" '^architecture: qwen2$'
run "$lora" info --model=tests/fixtures/tiny-qwen2 --json
expect_ok "info --json" '"num_parameters": ?111168'
run "$lora" info --model tests/fixtures/qwen2.5-0.5b-config/
expect_ok "info Qwen2.5-0.5B config folder" '^parameters: 494,032,768$'
run "$lora" info --model tests/fixtures/qwen2.5-0.5b-config/config.json
expect_ok "info Qwen2.5-0.5B config.json path" '^parameters: 494,032,768$'

# LoRA report on Qwen2.5-0.5B shapes (hidden 896, q width 896, kv width 128, intermediate 4864),
# r 8 on all seven projections of 24 layers:
#   per layer 8 * (2 * (896+896) + 2 * (896+128) + 3 * (896+4864)) = 183,296; * 24 = 4,399,104
#   all params 494,032,768 + 4,399,104 = 498,431,872; 100 * 4,399,104 / 498,431,872 = 0.8826
run "$lora" info --model tests/fixtures/qwen2.5-0.5b-config --lora-rank 8 --target-modules all-linear
expect_ok "info --lora-rank 8 all-linear: adapted modules" '^adapted modules: 168$'
run "$lora" info --model tests/fixtures/qwen2.5-0.5b-config --lora-rank 8 --target-modules all-linear
expect_ok "info --lora-rank 8 all-linear: PEFT trainable line" \
    '^trainable params: 4,399,104 \|\| all params: 498,431,872 \|\| trainable%: 0\.8826$'
run "$lora" info --model tests/fixtures/qwen2.5-0.5b-config --lora-rank 8 --target-modules attn,ffn \
    --lora-alpha 16
expect_ok "info --target-modules attn,ffn equals all-linear" '^trainable params: 4,399,104 '
run "$lora" info --model tests/fixtures/qwen2.5-0.5b-config --lora-rank 8 --target-modules all-linear \
    --lora-alpha 16 --json
expect_ok "info --json with a lora object" '"lora": ?\{"modules": ?168,"trainable_parameters": ?4399104'
# tiny-qwen2, r 4 on attn: per layer 4 * (2 * (64+64) + 2 * (64+32)) = 1,792; 2 layers = 3,584
run "$lora" info --model tests/fixtures/tiny-qwen2 --lora-rank 4 --target-modules attn
expect_ok "info tiny-qwen2 --target-modules attn" \
    '^trainable params: 3,584 \|\| all params: 114,752 \|\| trainable%: 3\.1233$'

# --- init, then info / generate / bench on the result --------------------------------------------
# vocab 128, hidden 32, intermediate 64, 2 layers, 4 heads, 2 kv heads (head_dim 8, kv width 16):
#   embed 128*32 = 4,096; per layer: q 32*32+32 = 1,056; k, v 16*32+16 = 528 each; o 1,024;
#   MLP 3*32*64 = 6,144; norms 64 -> 9,344; 2 layers = 18,688; final norm 32 -> 22,816
cat > "$tmp/small.json" <<'JSON'
{"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": 128,
 "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
 "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "tie_word_embeddings": true,
 "hidden_act": "silu", "torch_dtype": "float32"}
JSON
run "$lora" init --config "$tmp/small.json" --out "$tmp/a" --seed 7
expect_ok "init small config" 'wrote'
run "$lora" info --model "$tmp/a"
expect_ok "info on the initialised checkpoint" '^parameters: 22,816$'
run "$lora" init --config "$tmp/small.json" --out "$tmp/b" --seed 7
if [ "$rc" -eq 0 ] && [ -s "$tmp/a/model.safetensors" ] &&
   cmp -s "$tmp/a/model.safetensors" "$tmp/b/model.safetensors"; then
    pass "init twice with one seed: identical model.safetensors"
else fail "init twice with one seed: identical model.safetensors" "exit $rc or files differ"; fi
run "$lora" init --config "$tmp/small.json" --out "$tmp/c" --seed 8
if [ "$rc" -eq 0 ] && [ -s "$tmp/a/model.safetensors" ] && [ -s "$tmp/c/model.safetensors" ] &&
   ! cmp -s "$tmp/a/model.safetensors" "$tmp/c/model.safetensors"; then
    pass "init with another seed: different weights"
else fail "init with another seed: different weights" "exit $rc or files equal"; fi
run "$lora" init --config "$tmp/small.json" --out "$tmp/bf16" --dtype bf16
expect_ok "init --dtype bf16" 'wrote'
run "$lora" info --model "$tmp/bf16"
expect_ok "info on a bf16 checkpoint" '^dtype: .*[bB][fF](loat)?16'

# --- import a GGUF (models/tiny in Q4_0/Q4_1/Q8_0); the folder and the file generate alike -------
run "$lora" import --gguf tests/fixtures/gguf/tiny-q4.gguf --out "$tmp/imported"
expect_ok "import --gguf" '^wrote '
run "$lora" generate --model "$tmp/imported" --prompt "What is 12 + 7?" --max-new-tokens 8
cp "$tmp/out" "$tmp/from_folder"
expect_ok "generate on the imported folder" '[0-9]'
run "$lora" generate --model tests/fixtures/gguf/tiny-q4.gguf --prompt "What is 12 + 7?" \
    --max-new-tokens 8
if [ "$rc" -eq 0 ] && cmp -s "$tmp/out" "$tmp/from_folder"; then
    pass "generate on the .gguf itself: the imported folder's text"
else fail "generate on the .gguf itself: the imported folder's text" "exit $rc: $(head -c 200 "$tmp/out")"; fi
# --- eval --answers --match exact: whole replies, not extracted answers --------------------------
run "$lora" generate --model models/tiny --prompt "What is 12 + 7?" --max-new-tokens 24
python3 -c 'import json, sys
r = open(sys.argv[1]).read()
for a in (r, "\n " + r + "  ", r.strip() + " more"):
    print(json.dumps({"question": "What is 12 + 7?", "answer": a}))' "$tmp/out" >"$tmp/qa.jsonl"
run "$lora" eval --model models/tiny --answers "$tmp/qa.jsonl" --match exact --max-new-tokens 24
expect_ok "eval --match exact: the reply itself counts, padded or not; a longer one does not" \
    '^greedy accuracy: 0.6667 \(2 correct\)$'
run "$lora" eval --model models/tiny --answers "$tmp/qa.jsonl" --match nearly
expect_error "eval --match with an unknown mode" 2 '--match must be answer or exact'
run "$lora" eval --model models/tiny --data "$tmp/qa.jsonl" --match exact
expect_error "eval --match without --answers" 2 '--match applies to --answers'

run "$lora" info --model tests/fixtures/gguf/tiny-q4.gguf
expect_ok "info on a .gguf: its main quantization type" '^dtype: Q4_1$'
run "$lora" import --out "$tmp/x"
expect_error "import without --gguf" 2 '--gguf is required'
run "$lora" import --gguf tests/fixtures/gguf/tok-qwen2.gguf --out "$tmp/x"
expect_error "import of a GGUF without a model" 1 "'llama.block_count' is missing"

run "$lora" generate --model "$tmp/a" --prompt-ids 1,2,3 --max-new-tokens 8
expect_ok "generate greedy: 8 ids" '^[0-9]+( [0-9]+){7}$'
if [ "$rc" -eq 0 ] && [ -s "$tmp/out" ] &&
   awk '{ for (i = 1; i <= NF; i++) if ($i !~ /^[0-9]+$/ || $i >= 128) exit 1 }' "$tmp/out"; then
    pass "generate: ids inside the vocabulary"
else fail "generate: ids inside the vocabulary" "$(cat "$tmp/out")"; fi
run "$lora" generate --model "$tmp/a" --prompt-ids "5, 6" --max-new-tokens 12 --do-sample \
    --temperature 0.9 --top-k 50 --top-p 0.95 --min-p 0.01 --repetition-penalty 1.1 --seed 3
cp "$tmp/out" "$tmp/sampled1"
expect_ok "generate sampled: 12 ids" '^[0-9]+( [0-9]+){11}$'
run "$lora" generate --model "$tmp/a" --prompt-ids "5, 6" --max-new-tokens 12 --do-sample \
    --temperature 0.9 --top-k 50 --top-p 0.95 --min-p 0.01 --repetition-penalty 1.1 --seed 3
if [ "$rc" -eq 0 ] && [ -s "$tmp/out" ] && cmp -s "$tmp/out" "$tmp/sampled1"; then
    pass "generate sampled: same seed, same ids"
else fail "generate sampled: same seed, same ids" "$(cat "$tmp/sampled1") vs $(cat "$tmp/out")"; fi

# --- merge: a Hugging Face folder whose logits match the attached adapter's -----------------------
mkdir -p "$tmp/qwen2" && cp tests/fixtures/tiny-qwen2/config.json tests/fixtures/tiny-qwen2/model.safetensors "$tmp/qwen2/"
printf '{"bos_token": null}' > "$tmp/qwen2/tokenizer_config.json"
run "$lora" merge --model "$tmp/qwen2" --adapter tests/fixtures/tiny-qwen2/adapter --out "$tmp/merged"
expect_ok "merge tiny-qwen2 with its adapter" 'max logit change on a 16-token probe: [0-9.e-]+$'
if [ "$rc" -eq 0 ] && awk '{ v = $NF + 0; exit !(v < 1e-4) }' "$tmp/out"; then
    pass "merge: probe logits agree to rounding"
else fail "merge: probe logits agree to rounding" "$(cat "$tmp/out")"; fi
if cmp -s "$tmp/qwen2/tokenizer_config.json" "$tmp/merged/tokenizer_config.json"; then
    pass "merge copies the tokenizer files"
else fail "merge copies the tokenizer files" "tokenizer_config.json missing or changed"; fi
run "$lora" info --model "$tmp/merged"
expect_ok "info on the merged folder" '^parameters: 111,168$'
run "$lora" merge --model "$tmp/qwen2" --adapter tests/fixtures/tiny-qwen2/adapter --out "$tmp/merged16" --dtype bf16 --scale 0.5
expect_ok "merge --dtype bf16 --scale 0.5" 'at scale 0.5; wrote .* \(bf16\)'
run "$lora" merge --model "$tmp/qwen2" --out "$tmp/m3"
expect_error "merge without --adapter" 2 '--adapter'
run "$lora" merge --model "$tmp/qwen2" --adapter "$tmp/no-adapter" --out "$tmp/m3"
expect_error "merge with a missing adapter folder" 1 'no-adapter'
run "$lora" merge --model "$tmp/qwen2" --adapter tests/fixtures/tiny-llama/adapter --out "$tmp/m3"
expect_error "merge with another model's adapter" 1 'shape|dimension|layer|q_proj'
if [ ! -e "$tmp/m3" ]; then pass "a failed merge writes nothing"
else fail "a failed merge writes nothing" "$tmp/m3 exists"; fi

run "$lora" bench --model "$tmp/a" --mode decode --new 8 --threads 1
expect_ok "bench decode" '^decode_tokens_per_s=[0-9]+\.[0-9]$'

# --- text: train, eval, generate and chat on a tiny model with the real Qwen tokenizer --------------
cat > "$tmp/qwen-vocab.json" <<'JSON'
{"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": 151936,
 "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
 "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "tie_word_embeddings": true,
 "hidden_act": "silu", "torch_dtype": "float32"}
JSON
"$lora" init --config "$tmp/qwen-vocab.json" --out "$tmp/tq" --seed 3 >/dev/null
cp tests/fixtures/qwen-tokenizer/tokenizer.json tests/fixtures/qwen-tokenizer/tokenizer_config.json "$tmp/tq/"
python3 - "$tmp/sft.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(10):
        a, b = i + 3, 2 * i + 1
        f.write(json.dumps({"messages": [
            {"role": "user", "content": f"What is {a} plus {b}?"},
            {"role": "assistant", "content": f"The answer is \\boxed{{{a + b}}}."}]}) + "\n")
PY
train_args="--model $tmp/tq --data $tmp/sft.jsonl --epochs 4 --batch-size 2 --grad-accum 2 --lr 0.02 --lora-r 4 --threads 1 --seed 5"
run "$lora" train $train_args --out "$tmp/run" --eval-split 0.2
expect_ok "train: LoRA on a JSONL with an eval split" '^wrote .*PEFT adapter'
n_steps=$(grep -c '"loss"' "$tmp/run/metrics.jsonl" 2>/dev/null)
n_eval=$(grep -c '"eval_loss"' "$tmp/run/metrics.jsonl" 2>/dev/null)
# 8 rows in batches of 2: 4 micro-batches an epoch, 16 in all, one update per 2
if [ "$n_steps" = 8 ] && [ "$n_eval" = 4 ]; then pass "train: one log line per update and per epoch"
else fail "train: one log line per update and per epoch" "$n_steps updates, $n_eval evaluations"; fi
if python3 -c "import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); assert d.getElementsByTagName('polyline')" "$tmp/run/loss.svg" 2>/dev/null; then
    pass "train: loss.svg is an SVG with a curve"
else fail "train: loss.svg is an SVG with a curve" "missing or malformed"; fi
if python3 - "$tmp/run/metrics.jsonl" <<'PY'
import json, sys
ev = [json.loads(l)["eval_loss"] for l in open(sys.argv[1]) if "eval_loss" in l]
sys.exit(0 if all(b < a for a, b in zip(ev, ev[1:])) else 1)
PY
then pass "train: eval loss falls every epoch"; else fail "train: eval loss falls every epoch" "$(grep eval_loss "$tmp/run/metrics.jsonl")"; fi
run "$lora" eval --model "$tmp/tq" --data "$tmp/sft.jsonl" --json
base_loss=$(sed -E 's/.*"loss": ([0-9.]+).*/\1/' "$tmp/out")
run "$lora" eval --model "$tmp/tq" --data "$tmp/sft.jsonl" --adapter "$tmp/run" --json
expect_ok "eval --adapter --json" '"perplexity": [0-9.]+'
tuned_loss=$(sed -E 's/.*"loss": ([0-9.]+).*/\1/' "$tmp/out")
if awk -v a="$tuned_loss" -v b="$base_loss" 'BEGIN { exit !(a + 0 < b + 0) }'; then
    pass "eval: the trained adapter lowers the loss ($base_loss -> $tuned_loss)"
else fail "eval: the trained adapter lowers the loss" "$base_loss -> $tuned_loss"; fi

# Ctrl-C at a random point, then --resume: the adapter equals an uninterrupted run's, byte for byte
run "$lora" train $train_args --out "$tmp/straight" --lora-dropout 0.1
"$lora" train $train_args --out "$tmp/cut" --lora-dropout 0.1 >"$tmp/cut.out" 2>&1 &
pid=$!
for i in $(seq 1 300); do
    [ "$(cat "$tmp/cut/metrics.jsonl" 2>/dev/null | grep -c '"loss"')" -ge 3 ] && break; sleep 0.05
done
kill -INT "$pid" 2>/dev/null; wait "$pid"; cut_rc=$?
if [ "$cut_rc" = 130 ] && [ -f "$tmp/cut/checkpoint/trainer_state.json" ]; then
    pass "train: Ctrl-C saves a checkpoint and exits 130"
    run "$lora" train $train_args --out "$tmp/cut" --lora-dropout 0.1 --resume "$tmp/cut/checkpoint"
    expect_ok "train --resume finishes the run" '^wrote '
    if cmp -s "$tmp/straight/adapter_model.safetensors" "$tmp/cut/adapter_model.safetensors"; then
        pass "train: interrupted and resumed equals uninterrupted, byte for byte"
    else fail "train: interrupted and resumed equals uninterrupted, byte for byte" "adapters differ"; fi
elif [ "$cut_rc" = 0 ]; then
    skipped=$((skipped + 1)); echo "skipped: Ctrl-C test: the run finished before the signal"
else fail "train: Ctrl-C saves a checkpoint and exits 130" "exit $cut_rc: $(tail -n 2 "$tmp/cut.out")"; fi

run "$lora" train $train_args --out "$tmp/full" --full --epochs 1 --lr 1e-3
expect_ok "train --full writes a model folder" '^wrote .*model.safetensors'
run "$lora" info --model "$tmp/full"
expect_ok "info on the fully fine-tuned folder" '^architecture: qwen2$'
run "$lora" train $train_args --out "$tmp/packed" --packing --max-length 64 --epochs 1 --grad-accum 1
expect_ok "train --packing" '"rows":[0-9]+'
run "$lora" train $train_args --out "$tmp/acts" --activations float32 --epochs 1
expect_ok "train --activations float32" '^wrote '
run "$lora" train $train_args --out "$tmp/bad" --activations bf16
expect_error "train --activations bf16 on the CPU" 1 "'train_activations'.*cpu"
run "$lora" train $train_args --out "$tmp/bad" --activations fp8
expect_error "train --activations fp8" 1 "'train_activations' must be"

run "$lora" generate --model "$tmp/tq" --prompt "What is 3 plus 4?" --max-new-tokens 6 --adapter "$tmp/run:0.5"
expect_ok "generate --prompt with an adapter" '^'
run "$lora" generate --model "$tmp/tq" --prompt "2+2=" --raw --max-new-tokens 4 --do-sample --seed 1
expect_ok "generate --raw sampled" '^'
printf '[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]' > "$tmp/msgs.json"
run "$lora" generate --model "$tmp/tq" --messages "$tmp/msgs.json" --max-new-tokens 4
expect_ok "generate --messages" '^'
printf 'What is 1 plus 1?\n/adapters\n/adapter none\n/adapter 1\n/adapter nope\n/system Answer with a number.\nAgain?\n/reset\n/quit\nnever read\n' > "$tmp/chat.in"
run sh -c "'$lora' chat --model '$tmp/tq' --adapter '$tmp/run' --max-new-tokens 4 < '$tmp/chat.in'"
expect_ok "chat: /adapter none" '^adapter: none$'
expect_ok "chat: /adapter 1" '^adapter: 1$'
expect_ok "chat: an unknown adapter is reported" "^no adapter 'nope'"
expect_ok "chat: /reset" '^history cleared$'
run "$lora" generate --model "$tmp/tq" --prompt hi --prompt-ids 1,2
expect_error "generate with --prompt and --prompt-ids" 2 'exactly one'
run "$lora" train --model "$tmp/tq" --data "$tmp/no-such.jsonl" --out "$tmp/bad"
expect_error "train with a missing data file" 1 'no-such.jsonl'
run "$lora" train $train_args --out "$tmp/bad" --eval-split 0.2 --eval-data "$tmp/sft.jsonl"
expect_error "train with --eval-split and --eval-data" 2 'exclude'
run "$lora" eval --model "$tmp/tq"
expect_error "eval without --data" 2 '--data'
run "$lora" chat --model "$tmp/tq" --adapter "$tmp/no-adapter"
expect_error "chat with a missing adapter" 1 'no-adapter'

# --- tokenize ------------------------------------------------------------------------------------
tokdir=tests/fixtures/qwen-tokenizer
run "$lora" tokenize --tokenizer "$tokdir" --check "$tokdir/golden_encodings.jsonl"
expect_ok "tokenize --check golden_encodings.jsonl" '^40 passed, 0 failed$'
run "$lora" tokenize --tokenizer "$tokdir" --check "$tokdir/golden_random.jsonl"
expect_ok "tokenize --check golden_random.jsonl" '^[0-9]+ passed, 0 failed$'
# a golden file with one wrong id and one wrong decoding: two failure lines, exit 1
printf '%s\n' '{"text":"Hello World","ids":[9707,4337],"decoded":"Hello World"}' \
    '{"text":"Hello World","ids":[9707,4338],"decoded":"Hello World"}' \
    '{"text":"a","ids":[64],"decoded":"b"}' > "$tmp/bad.jsonl"
run "$lora" tokenize --tokenizer "$tokdir" --check "$tmp/bad.jsonl"
if [ "$rc" -eq 1 ] && [ "$(tail -n 1 "$tmp/out")" = "1 passed, 2 failed" ] &&
   grep -q '^line 2: ids differ at index 1: got 4337, expected 4338' "$tmp/out" &&
   grep -q '^line 3: decoded text differs' "$tmp/out" && [ "$(wc -l < "$tmp/out")" -eq 3 ]; then
    pass "tokenize --check reports each failing case"
else fail "tokenize --check reports each failing case" "exit $rc: $(cat "$tmp/out")"; fi
printf 'Hello World\n\nx<|im_end|>y\n' > "$tmp/lines.txt"
run "$lora" tokenize --tokenizer "$tokdir" "$tmp/lines.txt"
if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/out")" = "$(printf '9707,4337\n\n87,151645,88')" ]; then
    pass "tokenize FILE: ids per line"
else fail "tokenize FILE: ids per line" "exit $rc: $(cat "$tmp/out")"; fi
run sh -c "printf 'x<|im_end|>y\n' | '$lora' tokenize --tokenizer '$tokdir/tokenizer.json' --special-as-text"
expect_ok "tokenize stdin --special-as-text" '^87,27,91,318,6213,91,29,88$'
printf 'ab\377cd\n' > "$tmp/invalid.txt"
run "$lora" tokenize --tokenizer "$tokdir" --replace-invalid "$tmp/invalid.txt"
expect_ok "tokenize --replace-invalid" '^370,5691,4385$'
run "$lora" tokenize --tokenizer "$tokdir" --bench "$tokdir/make_golden.py"
expect_ok "tokenize --bench prints tokenize_mb_per_s" '^tokenize_mb_per_s=[0-9]+\.[0-9]+$'

# --- errors: one stderr line, exit 2 for usage and 1 for runtime errors --------------------------
run "$lora" info
expect_error "info without --model" 2 '--model'
run "$lora" info --model "$tmp/no-such-dir"
expect_error "info on a missing folder" 1 'no-such-dir'
run "$lora" info --model tests/fixtures/tiny-qwen2 --bogus
expect_error "info with an unknown option" 2 '--bogus'
run "$lora" info --model
expect_error "option without its value" 2 '--model'
run "$lora" info --model tests/fixtures/tiny-qwen2 --target-modules q_proj,lm_head
expect_error "info with an unknown target module" 2 'lm_head'
run "$lora" info --model tests/fixtures/tiny-qwen2 --lora-rank 0
expect_error "info with --lora-rank 0" 2 '--lora-rank'
run "$lora" info --model tests/fixtures/tiny-qwen2 --lora-alpha -1
expect_error "info with a negative --lora-alpha" 2 '--lora-alpha'
run "$lora" init --config "$tmp/small.json" --out "$tmp/d" --dtype f16
expect_error "init with a bad --dtype" 2 '--dtype'
run "$lora" init --config "$tmp/missing.json" --out "$tmp/d"
expect_error "init with a missing config file" 1 'missing.json'
run "$lora" generate --model "$tmp/a"
expect_error "generate without --prompt-ids" 2 '--prompt-ids'
run "$lora" generate --model "$tmp/a" --prompt-ids 1,x
expect_error "generate with a bad id list" 2 '--prompt-ids'
run "$lora" generate --model "$tmp/a" --prompt-ids 1,2 --top-k many
expect_error "generate with a non-numeric --top-k" 2 '--top-k'
run "$lora" generate --model "$tmp/a" --prompt-ids 1,2 --temperature -1
expect_error "generate with a negative temperature" 1 'temperature'
run "$lora" bench --model "$tmp/a" --mode train --seq 16 --batch 2 --steps 2 --rank 4 --threads 1
expect_ok "bench --mode train prints train_tokens_per_s" '^train_tokens_per_s=[0-9]+\.[0-9]$'
run "$lora" bench --model "$tmp/a" --mode decode --rank 4 --new 8 --threads 1
expect_ok "bench --mode decode --rank prints decode_tokens_per_s" '^decode_tokens_per_s=[0-9]+\.[0-9]$'
run "$lora" bench --model "$tmp/a" --mode train --seq 100000
expect_error "bench --seq past the model's positions" 1 'max_position_embeddings'
run "$lora" frobnicate
expect_error "unknown command" 2 'frobnicate'
run "$lora" tokenize --check x.jsonl
expect_error "tokenize without --tokenizer" 2 '--tokenizer'
run "$lora" tokenize --tokenizer "$tmp/no-such-tokenizer"
expect_error "tokenize on a missing folder" 1 'no-such-tokenizer'
run "$lora" tokenize --tokenizer "$tmp" --check tests/fixtures/qwen-tokenizer/golden_encodings.jsonl
expect_error "tokenize on a folder without tokenizer.json" 1 'tokenizer.json'
printf '{"model": {' > "$tmp/tokenizer.json"
run "$lora" tokenize --tokenizer "$tmp/tokenizer.json"
expect_error "tokenize with a truncated tokenizer.json" 1 'tokenizer.json: line 1'
rm -f "$tmp/tokenizer.json"
run "$lora" tokenize --tokenizer tests/fixtures/qwen-tokenizer --check "$tmp/missing.jsonl"
expect_error "tokenize --check on a missing file" 1 'missing.jsonl'
run "$lora" tokenize --tokenizer tests/fixtures/qwen-tokenizer "$tmp/missing.txt"
expect_error "tokenize on a missing input file" 1 'missing.txt'
run "$lora" tokenize --tokenizer tests/fixtures/qwen-tokenizer "$tmp/invalid.txt"
expect_error "tokenize on invalid UTF-8" 1 'byte 2'
run "$lora" tokenize --tokenizer tests/fixtures/qwen-tokenizer a.txt b.txt
expect_error "tokenize with two files" 2 'b.txt'
run "$lora" tokenize --tokenizer tests/fixtures/qwen-tokenizer --check a.jsonl --bench b.txt
expect_error "tokenize --check with --bench" 2 'exclude'

echo "$passed $failed $skipped" > "$result"
echo "cli: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
