"""Writes everything `make tiny-model` needs before liblora trains: the pretraining corpus, the
tokenizer, the model's config.json and the demo's arithmetic datasets (the forecasting task's
series are simulated by examples/forecast.c itself). Seeded: the same run gives the
same bytes.

    python3 tools/tiny_model/make_tiny.py OUT_MODEL_DIR OUT_DATA_DIR CORPUS.jsonl CORPUS3.jsonl

CORPUS.jsonl feeds the first two pretraining stages, CORPUS3.jsonl the third (long series).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import bpe  # noqa: E402
import corpus  # noqa: E402
import tasks  # noqa: E402

N_DOCS = 24000
N_DOCS3 = 4000
N_MERGES = 440
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
          "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\n' }}{% endif %}")


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def main(model_dir, data_dir, corpus_path, corpus3_path):
    os.makedirs(model_dir, exist_ok=True)
    os.makedirs(data_dir, exist_ok=True)
    docs = list(corpus.documents(N_DOCS, seed=1))
    write_jsonl(corpus_path, ({"text": d} for d in docs))
    write_jsonl(corpus3_path, ({"text": d} for d in corpus.stage3_documents(N_DOCS3, seed=3)))
    train_q = tasks.arithmetic(600, seed=11)
    test_q = tasks.arithmetic(100, seed=12, exclude={q for q, _, _ in train_q})
    # the tokenizer sees the chat turns too (their words become tokens); the model does not
    chat = [f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>\n"
            .replace("<|im_start|>", "").replace("<|im_end|>", "") for q, a, _ in train_q]
    vocab, merges = bpe.train(docs[:6000] + chat, N_MERGES)
    tok = bpe.tokenizer_json(vocab, merges)
    n_ids = len(vocab) + len(bpe.SPECIALS)
    with open(os.path.join(model_dir, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                   "chat_template": CHATML, "model_max_length": 2048}, f, indent=1)
    eos = [len(vocab) + 2, len(vocab)]  # <|im_end|>, <|endoftext|>
    with open(os.path.join(model_dir, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": eos, "pad_token_id": len(vocab)}, f, indent=1)
    config = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "vocab_size": (n_ids + 63) // 64 * 64, "hidden_size": 192, "intermediate_size": 512,
        "num_hidden_layers": 6, "num_attention_heads": 6, "num_key_value_heads": 2,
        "max_position_embeddings": 1280, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "tie_word_embeddings": True, "hidden_act": "silu", "initializer_range": 0.02,
        "torch_dtype": "float32", "bos_token_id": None, "eos_token_id": eos[0],
    }
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=1)

    write_jsonl(os.path.join(data_dir, "arith_train.jsonl"),
                ({"messages": [{"role": "user", "content": q},
                               {"role": "assistant", "content": a}]} for q, a, _ in train_q))
    write_jsonl(os.path.join(data_dir, "arith_test.jsonl"),
                ({"question": q, "answer": ans} for q, _, ans in test_q))
    print(f"vocabulary {n_ids} ids ({len(merges)} merges), {len(docs)} pretraining documents")


if __name__ == "__main__":
    main(*sys.argv[1:5])
