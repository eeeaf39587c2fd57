/*
 * lora.h -- the public interface of liblora.
 *
 * liblora loads Hugging Face decoder-only checkpoints (Qwen2/Qwen2.5, Qwen3, Llama), runs them,
 * fine-tunes them with LoRA (or fully), and turns text and JSONL data into tokens. This header is the only public one;
 * anything not declared here is not API.
 *
 * Conventions
 *   - Every fallible call returns a lora_status; results go to OUT parameters placed last.
 *     Constructors set *out = NULL on failure.
 *   - On failure, lora_last_error() returns a message naming the function and the offending
 *     value (file, key, line or shape). The message is thread-local.
 *   - Configuration crosses the ABI as UTF-8 JSON objects with Hugging Face key names. Unknown
 *     keys and out-of-range values are errors that name the key. NULL means "all defaults".
 *   - lora_*_free(NULL) is a no-op. Children keep their parent alive: a session keeps its model,
 *     so handles may be freed in any order.
 *   - A handle argument that is NULL, already freed, or a handle of another kind gives
 *     LORA_ERR_INVALID_ARGUMENT with a message naming the function and the argument (calls
 *     that return a size or a string return 0 or NULL); freeing such a pointer does nothing.
 *     Best effort: a freed handle whose memory went to a new handle of the same kind is taken
 *     for that handle.
 *   - The library never calls exit() or abort() and never prints.
 *
 * Threads
 *   - A lora_model is immutable after loading and may be shared by any number of threads.
 *   - A lora_session and a lora_sampler belong to one thread at a time: calls on one handle must
 *     not overlap. Different sessions over one model may run concurrently, and one adapter may
 *     be attached to several of them at once while no optimizer trains it.
 *   - lora_last_error() reports the last failure of the calling thread.
 *
 * Numbers
 *   - Tensors crossing the ABI are row-major float32 or int32 arrays; shapes are given in each
 *     doc block as (B, T, V) meaning batch, sequence, vocabulary.
 */
#ifndef LORA_H
#define LORA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define LORA_API __declspec(dllexport)
#elif defined(__GNUC__)
#  define LORA_API __attribute__((visibility("default")))
#else
#  define LORA_API
#endif

/** Library version of this header. Compare with lora_version_*() for the loaded library. */
#define LORA_VERSION_MAJOR 0
#define LORA_VERSION_MINOR 3
#define LORA_VERSION_PATCH 0
#define LORA_VERSION_STRING "0.3.0"
/** ABI version: the SONAME is liblora.so.<LORA_ABI_VERSION>. Bumped on incompatible change. */
#define LORA_ABI_VERSION 0

/**
 * Status codes. Values are fixed forever; new codes are only appended.
 */
typedef enum lora_status {
    LORA_OK = 0,                    /* success */
    LORA_ERR_INVALID_ARGUMENT = 1,  /* NULL pointer, zero size, inconsistent sizes */
    LORA_ERR_OUT_OF_MEMORY = 2,     /* host allocation failed */
    LORA_ERR_IO = 3,                /* a file could not be opened, read, written or renamed */
    LORA_ERR_FORMAT = 4,            /* a file's content is malformed (safetensors, JSON) */
    LORA_ERR_CONFIG = 5,            /* a configuration key or value is unknown or out of range */
    LORA_ERR_UNSUPPORTED = 6,       /* valid input this version does not support */
    LORA_ERR_SHAPE = 7,             /* a tensor's shape or dtype disagrees with the config */
    LORA_ERR_RANGE = 8,             /* a token id or length is out of range, context is full */
    LORA_ERR_STATE = 9,             /* the handle is not in a state that allows the call */
    LORA_ERR_NUMERIC = 10,          /* a non-finite value where a finite one is required */
    LORA_ERR_DEVICE = 11,           /* an accelerator is missing or failed */
    LORA_ERR_DEVICE_OUT_OF_MEMORY = 12, /* accelerator allocation failed */
    LORA_ERR_CANCELLED = 13,        /* a callback asked to stop */
    LORA_ERR_INTERNAL = 14          /* a bug in liblora; please report it */
} lora_status;

/** Opaque handles. */
typedef struct lora_model lora_model;
typedef struct lora_session lora_session;
typedef struct lora_sampler lora_sampler;
typedef struct lora_adapter lora_adapter;
typedef struct lora_optimizer lora_optimizer;
typedef struct lora_tokenizer lora_tokenizer;
typedef struct lora_detokenizer lora_detokenizer;
typedef struct lora_dataset lora_dataset;

/* ------------------------------------------------------------------------------------------ */
/* Version, errors                                                                              */
/* ------------------------------------------------------------------------------------------ */

/**
 * lora_version_major, lora_version_minor, lora_version_patch -- version of the loaded library.
 * Returns: the LORA_VERSION_* values the library was built with.
 * Threads: any. Since: 0.1.0.
 */
LORA_API int lora_version_major(void);
/** See lora_version_major(). Since: 0.1.0. */
LORA_API int lora_version_minor(void);
/** See lora_version_major(). Since: 0.1.0. */
LORA_API int lora_version_patch(void);

/**
 * lora_version_string -- "MAJOR.MINOR.PATCH" of the loaded library.
 * Returns: a static string, never NULL. Threads: any. Since: 0.1.0.
 */
LORA_API const char *lora_version_string(void);

/**
 * lora_abi_version -- the ABI version of the loaded library (the SONAME suffix).
 * Bindings compare it with the LORA_ABI_VERSION they were written for.
 * Threads: any. Since: 0.1.0.
 */
LORA_API int lora_abi_version(void);

/**
 * lora_status_string -- a short constant name for a status, e.g. "LORA_ERR_FORMAT".
 * Returns: a static string; "LORA_ERR_UNKNOWN" for values this version does not know.
 * Threads: any. Since: 0.1.0.
 */
LORA_API const char *lora_status_string(lora_status status);

/**
 * lora_last_error -- the message of the calling thread's most recent failure.
 * The message names the function and the offending file, key, line or shape.
 * Returns: a thread-local string valid until the thread's next liblora call; "" if no call
 *          has failed on this thread. Never NULL.
 * Threads: any (each thread sees its own). Since: 0.1.0.
 */
LORA_API const char *lora_last_error(void);

/**
 * lora_string_free -- frees a string that liblora allocated for the caller
 * (lora_model_describe). NULL is a no-op. Threads: any. Since: 0.1.0.
 */
LORA_API void lora_string_free(char *s);

/* ------------------------------------------------------------------------------------------ */
/* Models                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/**
 * lora_model_load -- loads a Hugging Face checkpoint folder, or a GGUF file.
 *
 * The folder holds config.json and either model.safetensors or model.safetensors.index.json
 * with its shards. Supported model_type values: "qwen2", "qwen3", "llama". Weights stored as
 * F32, BF16 or F16 are converted to float32 on the CPU. Every tensor's name, dtype and shape is
 * checked against config.json; every safetensors file is validated before any byte is used. In
 * a folder liblora saved, the files its liblora_manifest.json lists are checked against their
 * recorded size and SHA-256 first (docs/reliability.md). A path to a GGUF file (llama.cpp's
 * format, recognised by its magic) is converted as by lora_gguf_import() and dequantized into
 * float32 in memory; its tokenizer comes from the file's metadata.
 *
 * IN  path         folder path or GGUF file path (UTF-8).
 * IN  config_json  NULL or a JSON object:
 *                    "device":  "cpu" (default) | "auto" | "cuda" | "cuda:N"
 *                               "cuda" is device 0; the weights are uploaded to the GPU at
 *                               load (float32) and sessions, training and generation run
 *                               there. "auto" is CUDA device 0 when the build has the CUDA
 *                               backend and a usable GPU, else the CPU.
 *                    "cuda_math": "bf16" (default) | "fp32": how a GPU's matrix products
 *                               round their inputs (bf16 with float32 accumulation, or
 *                               float32); ignored on the CPU
 *                    "threads": worker threads of sessions made from this model
 *                               (default: the number of online CPUs, at most 64)
 * OUT out          the model, or NULL on failure. Free with lora_model_free().
 *
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT (NULL path/out); LORA_ERR_IO (missing file);
 * LORA_ERR_FORMAT (malformed safetensors or JSON; a file truncated or changed since liblora
 * saved it, or a malformed manifest: the message names the file); LORA_ERR_CONFIG (bad
 * option or config.json value); LORA_ERR_UNSUPPORTED (model_type, dtype, rope_scaling...);
 * LORA_ERR_SHAPE (a tensor disagrees with the config); LORA_ERR_DEVICE ("cuda" or "cuda:N": no
 * usable GPU, no such device, a build without the CUDA backend, cuBLASLt missing, a failed
 * CUDA call); LORA_ERR_DEVICE_OUT_OF_MEMORY (the weights do not fit on the GPU);
 * LORA_ERR_OUT_OF_MEMORY. On a GPU model every call that computes may also return
 * LORA_ERR_DEVICE_OUT_OF_MEMORY (the model and session stay usable) or LORA_ERR_DEVICE; after
 * a sticky device error (the CUDA context is lost) every call on the model's sessions and
 * optimizers returns LORA_ERR_DEVICE and only the _free functions are left. Training on a GPU
 * is LoRA with AdamW ("train": "full" and SGD are LORA_ERR_UNSUPPORTED there).
 * Threads: any. Since: 0.1.0.
 */
LORA_API lora_status lora_model_load(const char *path, const char *config_json, lora_model **out);

/**
 * lora_model_free -- drops the caller's reference. The weights are released when the last
 * session made from the model is freed too. NULL is a no-op.
 * Threads: not concurrently with other calls on the same handle. Since: 0.1.0.
 */
LORA_API void lora_model_free(lora_model *model);

/**
 * lora_model_info_json -- the model's description as a JSON object: model_type, vocab_size,
 * hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
 * head_dim, max_position_embeddings, rope_theta, rms_norm_eps, tie_word_embeddings,
 * attention_bias, qk_norm, stored_dtype, num_parameters, weight_bytes (as held in memory),
 * device, threads; on a GPU also device_weight_bytes and device_weight_dtype ("bf16": matrices
 * in bfloat16, norms and biases float32; "float32" with "cuda_math": "fp32").
 * Returns: a string owned by the model, valid while the model lives; NULL if model is NULL.
 * Threads: any. Since: 0.1.0.
 */
LORA_API const char *lora_model_info_json(const lora_model *model);

/**
 * lora_device_memory -- the device memory liblora's allocations hold on a GPU, over the whole
 * process: every model's device copy, the sessions' workspaces and KV caches, adapters,
 * gradients and optimizer state there. The CUDA context and cuBLAS's and cuDNN's own memory
 * are not included (nvidia-smi shows them).
 *
 * IN  device      "cuda" (device 0) or "cuda:N", N at most 63; the device need not exist.
 * OUT in_use_out  NULL or the bytes held now.
 * OUT peak_out    NULL or the most bytes held at once since the process started or the last
 *                 reset.
 * IN  reset_peak  non-zero: after reading, the peak starts again from the bytes held now.
 * Returns LORA_OK (0 and 0 for a device nothing has used); LORA_ERR_INVALID_ARGUMENT (device
 * NULL, not "cuda" or "cuda:N", or N above 63); LORA_ERR_DEVICE (a build without the CUDA
 * backend). Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_device_memory(const char *device, uint64_t *in_use_out,
                                        uint64_t *peak_out, int reset_peak);

/**
 * lora_model_vocab_size -- number of rows of the output layer (the logits' last dimension).
 * Returns 0 if model is NULL. Threads: any. Since: 0.1.0.
 */
LORA_API size_t lora_model_vocab_size(const lora_model *model);

/**
 * lora_model_num_parameters -- number of base-model parameters (tied embeddings counted once).
 * Returns 0 if model is NULL. Threads: any. Since: 0.1.0.
 */
LORA_API uint64_t lora_model_num_parameters(const lora_model *model);

/**
 * lora_model_describe -- describes a checkpoint folder without loading its weights.
 *
 * Reads and validates config.json and, when present, the safetensors headers (the tensor data
 * is not read). The JSON object has the keys of lora_model_info_json() except device/threads,
 * plus "has_weights" (false for a folder with config.json only), "stored_dtype" (from the
 * tensors, else torch_dtype) and "stored_bytes". A GGUF file is described from its metadata
 * and tensor table as lora_model_load() would convert it: "stored_dtype" is the GGUF type
 * holding most of the model's values ("Q4_1", "F16", ...), "stored_bytes" the bytes of the tensors the model
 * reads (since 0.3.0).
 *
 * IN  path      folder path, the path of a config.json file, or a GGUF file path.
 * OUT json_out  a string to free with lora_string_free(); NULL on failure.
 * Returns the statuses of lora_model_load() except LORA_ERR_DEVICE.
 * Threads: any. Since: 0.1.0.
 */
LORA_API lora_status lora_model_describe(const char *path, char **json_out);

/**
 * lora_model_init_checkpoint -- writes a randomly initialised checkpoint folder.
 *
 * Weights follow Hugging Face's initialisation: linear and embedding weights normal with
 * mean 0 and standard deviation initializer_range (config key, default 0.02), biases zero,
 * RMSNorm weights one. The folder gets config.json (torch_dtype set to the chosen dtype),
 * model.safetensors and liblora_manifest.json (their sizes and SHA-256), saved as one
 * transaction: after a failure or a crash at any point the folder holds its previous files or
 * the new ones, never a mix (docs/reliability.md). The folder is created if missing; other files
 * in it are kept. The same config and seed give the same bytes.
 *
 * IN  config_json  the contents of a Hugging Face config.json (validated as by
 *                  lora_model_load).
 * IN  out_dir      destination folder.
 * IN  seed         random seed.
 * IN  dtype        "f32" or "bf16" (NULL means "f32").
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_CONFIG; LORA_ERR_UNSUPPORTED;
 * LORA_ERR_IO (folder or file could not be written; existing files are left intact);
 * LORA_ERR_OUT_OF_MEMORY.
 * Threads: any. Since: 0.1.0.
 */
LORA_API lora_status lora_model_init_checkpoint(const char *config_json, const char *out_dir,
                                                uint64_t seed, const char *dtype);

/**
 * lora_gguf_import -- converts a GGUF file (llama.cpp's format) into a Hugging Face folder.
 *
 * Reads a Llama, Qwen2 or Qwen3 GGUF, validating every count, string length, dimension and
 * offset against the file (duplicate keys or tensor names are refused), dequantizes its
 * tensors (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), undoes
 * the q/k row permutation llama.cpp's converter applies to Llama attention, and writes
 * config.json, model.safetensors, tokenizer.json, tokenizer_config.json (with the chat
 * template) and generation_config.json into out_dir, each atomically (temporary file, fsync,
 * rename); the folder is created if missing. The tokenizer must be byte-level BPE
 * (tokenizer.ggml.model "gpt2") with a tokenizer.ggml.pre of "qwen2", "llama-bpe", "smollm"
 * or "gpt2".
 *
 * IN  gguf_path     the .gguf file.
 * IN  out_dir       destination folder.
 * IN  options_json  NULL or a JSON object: "dtype": "f32" (default) | "bf16", the dtype of
 *                   model.safetensors.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT (NULL path); LORA_ERR_CONFIG (bad option);
 * LORA_ERR_IO (unreadable file, unwritable folder: existing files are left intact);
 * LORA_ERR_FORMAT (malformed GGUF, naming the key, tensor and offset); LORA_ERR_UNSUPPORTED
 * (architecture, tensor type such as IQ2_XXS, tokenizer model or pre-tokenizer, RoPE scaling,
 * each named); LORA_ERR_SHAPE (a tensor disagrees with the metadata); LORA_ERR_OUT_OF_MEMORY.
 * Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_gguf_import(const char *gguf_path, const char *out_dir,
                                      const char *options_json);

/* ------------------------------------------------------------------------------------------ */
/* Sessions: forward passes and the KV cache                                                    */
/* ------------------------------------------------------------------------------------------ */

/**
 * lora_session_create -- one thread's mutable state over a model: KV cache, workspace,
 * worker threads.
 *
 * IN  model        the model; the session holds a reference to it.
 * IN  config_json  NULL or a JSON object:
 *                    "max_context": KV-cache length in tokens (default: the smaller of
 *                                   max_position_embeddings and 4096)
 *                    "threads":     worker threads (default: the model's "threads")
 *                    "train_activations": what a training step keeps of each layer for the
 *                                   backward: "bf16" (rounded to bfloat16, a third of the
 *                                   float32 bytes; only where the model's weights are bfloat16
 *                                   on a GPU), "float32", or "auto" (the default: "bf16" where
 *                                   it can be, else "float32"). Since: 0.3.0.
 * OUT out          the session or NULL.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_CONFIG; LORA_ERR_UNSUPPORTED ("bf16"
 * activations for a float32 model); LORA_ERR_OUT_OF_MEMORY.
 * Threads: any. Since: 0.1.0.
 */
LORA_API lora_status lora_session_create(lora_model *model, const char *config_json,
                                         lora_session **out);

/**
 * lora_session_free -- frees the session and drops its reference to the model. NULL is a no-op.
 * Since: 0.1.0.
 */
LORA_API void lora_session_free(lora_session *session);

/**
 * lora_session_logits -- batched forward pass over right-padded sequences.
 *
 * IN  ids         (B, T) token ids; positions at or past a sequence's length are ignored.
 * IN  lengths     (B) valid length of each sequence, 1..T; NULL means all T.
 * IN  batch, seq  B >= 1, T >= 1; T at most max_position_embeddings.
 * OUT logits_out  (B, T, V) float32 logits; rows of padded positions are set to 0.
 * The KV cache is neither used nor changed.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_RANGE (token id outside the vocabulary,
 * length outside 1..T, T too long); LORA_ERR_OUT_OF_MEMORY.
 * Threads: one caller per session. Since: 0.1.0.
 */
LORA_API lora_status lora_session_logits(lora_session *session, const int32_t *ids,
                                         const int32_t *lengths, size_t batch, size_t seq,
                                         float *logits_out);

/**
 * lora_session_logprobs -- log-probability of each given token under the model.
 *
 * OUT out  (B, T): out[b, t] = log p(ids[b, t] | ids[b, 0..t-1]) for 1 <= t < length;
 *          out[b, 0] and padded positions are 0.
 * Other parameters and statuses as lora_session_logits(). Since: 0.1.0.
 */
LORA_API lora_status lora_session_logprobs(lora_session *session, const int32_t *ids,
                                           const int32_t *lengths, size_t batch, size_t seq,
                                           float *out);

/**
 * lora_session_loss -- Hugging Face's causal-LM loss.
 *
 * The logits at position t predict labels[t + 1]; labels equal to -100 are not counted; the
 * loss is the mean over counted tokens (0 when none is counted).
 *
 * IN  ids, labels  (B, T) int32; labels are -100 or a token id.
 * OUT loss_out     the mean loss.
 * OUT n_counted    NULL or the number of counted tokens.
 * Returns as lora_session_logits(); LORA_ERR_RANGE also for a label outside the vocabulary.
 * Since: 0.1.0.
 */
LORA_API lora_status lora_session_loss(lora_session *session, const int32_t *ids,
                                       const int32_t *labels, size_t batch, size_t seq,
                                       float *loss_out, size_t *n_counted);

/**
 * lora_session_append -- runs tokens through the model, appending them to the KV cache.
 *
 * Use it for prefill (many tokens) and for decoding (one token at a time); the logits equal
 * those of a full forward over everything appended since the last reset.
 *
 * IN  ids         (n) token ids, n >= 1.
 * OUT logits_out  NULL or (V) logits of the last appended token.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_RANGE (token id out of range, or the
 * cache would exceed max_context: nothing is appended then); LORA_ERR_OUT_OF_MEMORY.
 * Since: 0.1.0.
 */
LORA_API lora_status lora_session_append(lora_session *session, const int32_t *ids, size_t n,
                                         float *logits_out);

/**
 * lora_session_position -- number of tokens in the KV cache. 0 if session is NULL.
 * Since: 0.1.0.
 */
LORA_API size_t lora_session_position(const lora_session *session);

/**
 * lora_session_reset -- empties the KV cache. NULL is a no-op. Since: 0.1.0.
 */
LORA_API void lora_session_reset(lora_session *session);

/* ------------------------------------------------------------------------------------------ */
/* LoRA adapters                                                                                */
/* ------------------------------------------------------------------------------------------ */

/**
 * lora_adapter_create -- a new LoRA adapter for a model, from PEFT LoraConfig keys.
 *
 * IN  model        the model whose projections it adapts; the adapter holds a reference.
 * IN  config_json  a JSON object with PEFT LoraConfig keys:
 *       "r"                   rank, default 8
 *       "lora_alpha"          default 8; scaling = lora_alpha / r
 *       "use_rslora"          default false; scaling = lora_alpha / sqrt(r)
 *       "lora_dropout"        [0, 1), default 0: dropout on the LoRA path's input while
 *                             training (lora_train_step), with a mask per projection
 *       "target_modules"      list of "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
 *                             "up_proj", "down_proj", or the groups "attn" (q, k, v, o) and
 *                             "ffn" (gate, up, down); or the string "all-linear" (all seven).
 *                             Default ["q_proj", "v_proj"] (PEFT's default for these models).
 *       "layers_to_transform" null (all) or a list of layer indices
 *       "rank_pattern", "alpha_pattern"  objects mapping a module name (e.g. "q_proj") or a
 *                             layer path (e.g. "model.layers.0.self_attn.q_proj") to r / alpha
 *       "init_lora_weights"   true (PEFT default: A kaiming-uniform a=sqrt(5), B zero),
 *                             "gaussian" (A normal with std 1/r, B zero) or false (A and B
 *                             as for true, then B also kaiming-uniform: a non-identity start)
 *       "bias"                "none" only
 *       PEFT bookkeeping keys (peft_type "LORA", task_type, base_model_name_or_path,
 *       inference_mode, fan_in_fan_out false, revision) are accepted; any other key, and
 *       features this version lacks (use_dora true, modules_to_save, ...), are refused by name.
 * IN  seed         seed of the initialisation.
 * OUT out          the adapter or NULL.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_CONFIG; LORA_ERR_UNSUPPORTED;
 * LORA_ERR_OUT_OF_MEMORY. Threads: any. Since: 0.2.0.
 */
LORA_API lora_status lora_adapter_create(lora_model *model, const char *config_json,
                                         uint64_t seed, lora_adapter **out);

/**
 * lora_adapter_load -- loads a PEFT adapter folder (adapter_config.json and
 * adapter_model.safetensors, tensors named like
 * "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").
 * Every tensor is checked against the model and the config: a missing, extra or mis-shaped
 * tensor is an error naming it and both shapes. A pickled adapter_model.bin is refused. In a
 * folder liblora saved, both files are first checked against liblora_manifest.json (size and
 * SHA-256); PEFT's folders have none and are read unchecked.
 * Returns the statuses of lora_adapter_create plus LORA_ERR_IO, LORA_ERR_FORMAT (also: a file
 * truncated or changed since liblora saved it, naming the file and the mismatch),
 * LORA_ERR_SHAPE. Threads: any. Since: 0.2.0.
 */
LORA_API lora_status lora_adapter_load(lora_model *model, const char *peft_dir,
                                       lora_adapter **out);

/**
 * lora_adapter_save -- writes the adapter as a PEFT folder (created if missing):
 * adapter_config.json and adapter_model.safetensors (F32), plus liblora_manifest.json with
 * their sizes and SHA-256, which PEFT ignores. The save is one transaction (files staged and
 * fsynced, the manifest written, then the files moved in): after a failure or a crash at any
 * point the folder holds the previous adapter or the new one, never a mix; other files in the
 * folder are kept (docs/reliability.md). One save at a time per folder.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_IO; LORA_ERR_OUT_OF_MEMORY.
 * Threads: not concurrently with training of the same adapter. Since: 0.2.0.
 */
LORA_API lora_status lora_adapter_save(const lora_adapter *adapter, const char *peft_dir);

/** lora_adapter_free -- drops the caller's reference; NULL is a no-op. Since: 0.2.0. */
LORA_API void lora_adapter_free(lora_adapter *adapter);

/**
 * lora_adapter_info_json -- what the adapter adapts, as the PEFT report prints it: a JSON
 * object with "modules" (adapted projections), "trainable_parameters", "total_parameters"
 * (base + adapter), "trainable_ratio" (percent), "r", "lora_alpha", "scaling",
 * "target_modules". Owned by the adapter; NULL if adapter is NULL. Since: 0.2.0.
 */
LORA_API const char *lora_adapter_info_json(const lora_adapter *adapter);

/**
 * lora_model_merge -- folds an adapter into the model's weights: W += scale * scaling * B A
 * for every projection it adapts. The original weights of those projections are kept, so
 * lora_model_unmerge restores them bit for bit.
 *
 * The weights change for every session over the model: call it while no other thread uses the
 * model, and detach the adapter from sessions that should not apply it twice. One merge at a
 * time.
 * IN  probe, n          NULL/0, or a probe sequence of token ids: then *max_logit_change gets
 *                       the largest |logit| difference between the merged model alone and the
 *                       unmerged model with the adapter attached at this scale (rounding only,
 *                       when all is well).
 * OUT max_logit_change  NULL or the probe's result (0 without a probe).
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT (NULL, adapter of another model, non-finite
 * scale); LORA_ERR_STATE (already merged); LORA_ERR_RANGE (probe id); LORA_ERR_OUT_OF_MEMORY
 * (nothing changed). Since: 0.2.0.
 */
LORA_API lora_status lora_model_merge(lora_model *model, lora_adapter *adapter, float scale,
                                      const int32_t *probe, size_t n, float *max_logit_change);

/**
 * lora_model_unmerge -- restores the weights a merge changed, bit for bit.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_STATE (nothing merged). Since: 0.2.0.
 */
LORA_API lora_status lora_model_unmerge(lora_model *model);

/**
 * lora_model_save -- writes the model's current weights (merged ones included) as a Hugging
 * Face folder that liblora and transformers load: config.json (as loaded, torch_dtype set)
 * and model.safetensors, saved as one transaction with liblora_manifest.json (sizes and
 * SHA-256) like lora_adapter_save's; the folder is created if missing.
 * IN  dtype  "f32" (default when NULL) or "bf16" (round to nearest even).
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_IO; LORA_ERR_OUT_OF_MEMORY.
 * Threads: not concurrently with a merge. Since: 0.2.0.
 */
LORA_API lora_status lora_model_save(const lora_model *model, const char *dir,
                                     const char *dtype);

/**
 * lora_session_set_adapters -- replaces the session's attached adapters. Each adapted
 * projection computes W x + sum_i scales[i] * scaling_i * B_i A_i x. The base weights are never
 * touched; n = 0 detaches all. The session holds references to the adapters.
 * IN  adapters, scales  (n) adapters of this session's model, and their scales (finite).
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT (NULL, an adapter of another model, a non-finite
 * scale); LORA_ERR_OUT_OF_MEMORY. The KV cache is reset (its keys were computed with the old
 * adapters). Threads: one caller per session. Since: 0.2.0.
 */
LORA_API lora_status lora_session_set_adapters(lora_session *session,
                                               lora_adapter *const *adapters,
                                               const float *scales, size_t n);

/* ------------------------------------------------------------------------------------------ */
/* Training                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/**
 * lora_optimizer_create -- an optimizer that trains through a session.
 *
 * IN  session      the session whose forward and backward it runs; the optimizer holds a
 *                  reference to it.
 * IN  config_json  NULL or a JSON object with torch.optim names and Hugging Face
 *                  TrainingArguments names:
 *       "train"              "adapters" (default): the LoRA A and B of every adapter attached
 *                            to the session now (they change in place); "full": every base
 *                            weight of the model (full fine-tuning: the model's weights change
 *                            in place, for every session over it)
 *       "optimizer"          "adamw" (default, torch.optim.AdamW) | "sgd" (torch.optim.SGD)
 *       "lr", "betas", "eps", "weight_decay", "amsgrad" (false), "momentum", "dampening",
 *       "nesterov"           as torch (defaults: lr 1e-3, weight_decay 0.01 for adamw)
 *       "loraplus_lr_ratio"  LoRA+: B matrices learn at this multiple of lr (default 1)
 *       "max_grad_norm"      global-norm clipping, 0 (default) = off
 *       "lr_scheduler_type"  "constant" | "linear" | "cosine" | "constant_with_warmup"
 *       "warmup_steps" | "warmup_ratio", "num_training_steps"   as Hugging Face
 *       "gradient_accumulation_steps"  micro-batches per update (default 1)
 *       "recompute"          true: keep only each layer's input and recompute the rest in the
 *                            backward (less memory, about a third more compute); default false
 *       "max_consecutive_skips"  non-finite steps in a row before failing (default 10)
 *       "seed"               seed of the adapters' lora_dropout masks (default 0); dropout
 *                            applies in lora_train_step only, never at inference
 * OUT out          the optimizer or NULL.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_CONFIG / LORA_ERR_UNSUPPORTED (names the
 * key); LORA_ERR_STATE ("train": "adapters" with no adapter attached);
 * LORA_ERR_OUT_OF_MEMORY.
 * Threads: the optimizer belongs to its session's thread. Since: 0.2.0.
 */
LORA_API lora_status lora_optimizer_create(lora_session *session, const char *config_json,
                                           lora_optimizer **out);

/** lora_optimizer_free -- drops the optimizer and its reference to the session. NULL is a
 * no-op. Since: 0.2.0. */
LORA_API void lora_optimizer_free(lora_optimizer *optimizer);

/**
 * lora_train_step -- one micro-batch: forward, loss, backward, and, every
 * gradient_accumulation_steps micro-batches, clipping, the update and the schedule.
 *
 * The loss is Hugging Face's causal-LM loss over the micro-batch (labels[t + 1] predicted at t,
 * -100 not counted, mean over counted tokens); with accumulation each micro-batch's loss is
 * divided by the number of micro-batches, as the HF Trainer does. A non-finite gradient skips
 * the update and leaves parameters and optimizer state untouched.
 *
 * IN  ids, labels  (B, T) int32.
 * OUT loss_out     NULL or the micro-batch's loss.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_RANGE (ids, labels); LORA_ERR_STATE (the
 * session's attached adapters changed since the optimizer was made); LORA_ERR_NUMERIC
 * (max_consecutive_skips non-finite steps in a row); LORA_ERR_OUT_OF_MEMORY.
 * Since: 0.2.0.
 */
LORA_API lora_status lora_train_step(lora_optimizer *optimizer, const int32_t *ids,
                                     const int32_t *labels, size_t batch, size_t seq,
                                     float *loss_out);

/**
 * lora_train_step_packed -- lora_train_step over packed rows: several samples laid end to end
 * in one row, none attending to another.
 *
 * IN  position_ids  (B, T) int32 or NULL (then 0..T-1 in every row, as lora_train_step). A 0
 *                   starts a new sample: its tokens attend only to the tokens from that 0 up
 *                   to themselves, and RoPE rotates each token by its position id. Every other
 *                   value must be the previous one plus 1 (Hugging Face's packing with
 *                   position_ids, DataCollatorWithFlattening). Labels are as lora_train_step;
 *                   a label at the first token of a sample is never predicted across samples
 *                   because the previous token belongs to another sample: set it to -100
 *                   (lora_dataset_next_batch does).
 * Returns as lora_train_step; LORA_ERR_RANGE also for a position id that breaks the rule.
 * Since: 0.3.0.
 */
LORA_API lora_status lora_train_step_packed(lora_optimizer *optimizer, const int32_t *ids,
                                            const int32_t *labels, const int32_t *position_ids,
                                            size_t batch, size_t seq, float *loss_out);

/**
 * lora_optimizer_save_checkpoint -- saves what resuming needs into the folder dir: the trained
 * weights (each adapter as a PEFT folder "adapter_0", ...; or "model" for full fine-tuning),
 * the optimizer state ("optimizer.safetensors": moments, step, skips, configuration) and
 * "trainer_state.json" (steps, tokens, and data_position, the caller's place in its data).
 * The folder is written whole as "dir.tmp" and exchanged with dir in one atomic rename, so dir
 * holds either the previous checkpoint or the new one, never a mix, even after a crash at any
 * point (docs/reliability.md); it keeps nothing but what liblora wrote. Only at an update
 * boundary (no micro-batch accumulated). The dropout mask stream resumes where it stopped, so a
 * run of N steps equals, bit for bit, N/2 steps, a save, a load into fresh handles, and N/2
 * more.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_STATE (mid-accumulation); LORA_ERR_IO;
 * LORA_ERR_OUT_OF_MEMORY. Since: 0.2.0.
 */
LORA_API lora_status lora_optimizer_save_checkpoint(lora_optimizer *optimizer, const char *dir,
                                                    uint64_t data_position);

/**
 * lora_optimizer_load_checkpoint -- restores a checkpoint into an optimizer made with the same
 * configuration over a session with adapters of the same shapes (or, for full fine-tuning,
 * the same model): weights, optimizer state and counters. Everything is checked before
 * anything changes, every file also against its recorded size and SHA-256.
 * OUT data_position  NULL or the value given to the save.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_IO; LORA_ERR_FORMAT (also a file
 * truncated or damaged since the save, named); LORA_ERR_CONFIG (names the differing key);
 * LORA_ERR_SHAPE; LORA_ERR_OUT_OF_MEMORY. Since: 0.2.0.
 */
LORA_API lora_status lora_optimizer_load_checkpoint(lora_optimizer *optimizer, const char *dir,
                                                    uint64_t *data_position);

/**
 * lora_optimizer_set_lr -- sets the base learning rate from the next update on (the schedule
 * still multiplies it). Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_CONFIG.
 * Since: 0.2.0.
 */
LORA_API lora_status lora_optimizer_set_lr(lora_optimizer *optimizer, double lr);

/**
 * lora_optimizer_stats_json -- the state after the last lora_train_step as a JSON object:
 * "step" (updates done), "micro_step" (micro-batches since the last update), "lr" (of the next
 * update), "last_lr" (of the last update), "grad_norm" (before clipping; null when none yet or
 * not finite), "skipped" (the last update was skipped), "skips" (in total), "tokens" (counted
 * tokens trained on), "last_loss". Returns a string owned by the optimizer, valid until its next
 * call; NULL if optimizer is NULL or out of memory (lora_last_error() says). Since: 0.2.0.
 */
LORA_API const char *lora_optimizer_stats_json(lora_optimizer *optimizer);

/* ------------------------------------------------------------------------------------------ */
/* Sampling and generation                                                                      */
/* ------------------------------------------------------------------------------------------ */

/**
 * lora_sampler_create -- a token sampler configured with Hugging Face GenerationConfig names.
 *
 * IN  config_json  NULL or a JSON object:
 *       "do_sample"          false (default): greedy; true: sample
 *       "temperature"        > 0, default 1.0; 0 means greedy
 *       "top_k"              0 (default: off) or keep the k highest logits (ties at the k-th
 *                            value are kept, as in Hugging Face)
 *       "top_p"              (0, 1], default 1.0: keep the smallest set of most probable
 *                            tokens whose probability sums to at least top_p
 *       "min_p"              [0, 1], default 0: drop tokens with p < min_p * max p
 *       "repetition_penalty" > 0, default 1.0: Hugging Face semantics over prompt and output
 *       "presence_penalty"   default 0: subtracted once from every token already generated
 *       "frequency_penalty"  default 0: subtracted per occurrence in the generated tokens
 *       "seed"               unsigned integer, default 0
 *       "max_new_tokens"     default 256
 *       "eos_token_id"       an id or a list of ids that end generation (emitted, then stop)
 *       "stop_sequences"     a list of lists of ids; generation stops after emitting one
 *     Warpers apply in Hugging Face's order: repetition penalty, presence/frequency penalties,
 *     temperature, top_k, top_p, min_p.
 * OUT out          the sampler or NULL.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_CONFIG (names the key);
 * LORA_ERR_OUT_OF_MEMORY.
 * Threads: any. Since: 0.1.0.
 */
LORA_API lora_status lora_sampler_create(const char *config_json, lora_sampler **out);

/** lora_sampler_free -- NULL is a no-op. Since: 0.1.0. */
LORA_API void lora_sampler_free(lora_sampler *sampler);

/**
 * lora_sampler_set_temperature -- changes the temperature (>= 0; 0 means greedy).
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT (NULL); LORA_ERR_CONFIG (negative or not finite).
 * Since: 0.1.0.
 */
LORA_API lora_status lora_sampler_set_temperature(lora_sampler *sampler, float temperature);

/**
 * lora_sampler_set_seed -- restarts the random stream from seed: the same seed and inputs give
 * the same tokens. Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT. Since: 0.1.0.
 */
LORA_API lora_status lora_sampler_set_seed(lora_sampler *sampler, uint64_t seed);

/**
 * lora_sampler_sample -- picks the next token from one row of logits.
 *
 * IN  logits      (V) float32 logits; not modified.
 * IN  n_vocab     V >= 1.
 * IN  tokens      (n_tokens) the prompt followed by the tokens generated so far (for the
 *                 penalties); may be NULL when n_tokens is 0.
 * IN  n_prompt    how many of tokens are prompt (<= n_tokens).
 * OUT token_out   the chosen id.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_RANGE (a token in tokens outside
 * 0..V-1); LORA_ERR_NUMERIC (a NaN logit, or no finite logit); LORA_ERR_OUT_OF_MEMORY.
 * Threads: one caller per sampler. Since: 0.1.0.
 */
LORA_API lora_status lora_sampler_sample(lora_sampler *sampler, const float *logits,
                                         size_t n_vocab, const int32_t *tokens,
                                         size_t n_tokens, size_t n_prompt, int32_t *token_out);

/**
 * lora_token_cb -- called with each generated token as soon as it is chosen.
 * Return 0 to continue, non-zero to stop generation (lora_generate then returns LORA_OK).
 */
typedef int (*lora_token_cb)(int32_t token, void *user);

/**
 * lora_generate -- appends the prompt to the session's KV cache, then samples up to the
 * sampler's max_new_tokens tokens, stopping after an eos_token_id or a stop sequence.
 *
 * Generation continues from what the cache already holds (call lora_session_reset() for a
 * fresh start). On return the cache holds the prompt and every generated token except the
 * last one, which was never run through the model: to continue, begin the next prompt with it.
 *
 * IN  prompt, n   (n) token ids, n >= 1.
 * OUT out         (cap) generated ids; NULL only if cap is 0.
 * IN  cap         capacity of out; generation stops when it is full.
 * OUT n_out       number of tokens written.
 * IN  cb, user    NULL or a callback that sees each token.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_RANGE (token id, or the context fills:
 * the tokens generated so far are kept in out and *n_out); LORA_ERR_NUMERIC;
 * LORA_ERR_OUT_OF_MEMORY.
 * Threads: one caller per session and per sampler. Since: 0.1.0.
 */
LORA_API lora_status lora_generate(lora_session *session, lora_sampler *sampler,
                                   const int32_t *prompt, size_t n, int32_t *out, size_t cap,
                                   size_t *n_out, lora_token_cb cb, void *user);

/* ------------------------------------------------------------------------------------------ */
/* Tokenizer                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/** Flags of lora_tokenizer_encode. */
#define LORA_ENCODE_SPECIAL_AS_TEXT 0x1u /* special-token text in the input is plain text
                                            (user content cannot forge turn markers) */
#define LORA_ENCODE_UTF8_REPLACE    0x2u /* invalid UTF-8 becomes U+FFFD instead of an error */
/** Flags of lora_tokenizer_decode and lora_detokenizer_create. */
#define LORA_DECODE_SKIP_SPECIAL    0x1u /* special tokens produce no text */

/**
 * lora_tokenizer_load -- loads a Hugging Face tokenizer: a byte-level BPE tokenizer.json
 * (NFC normalizer, Split pre-tokenizer regex, ByteLevel, added and special tokens) and, when
 * present beside it, tokenizer_config.json (bos/eos/pad tokens, chat template).
 *
 * IN  path         a folder holding tokenizer.json, or the path of a tokenizer.json.
 * IN  config_json  NULL or a JSON object:
 *       "chat_template"  "auto" (default: recognised from tokenizer_config.json's template),
 *                        or a built-in name ("qwen2.5", "qwen3", "llama3", "chatml",
 *                        "smollm2"), used
 *                        when the folder's template is not one liblora recognises
 * OUT out          the tokenizer or NULL. Free with lora_tokenizer_free().
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_IO; LORA_ERR_FORMAT (malformed JSON,
 * names the key or line); LORA_ERR_UNSUPPORTED (a model, normalizer or pre-tokenizer type
 * this version lacks, named); LORA_ERR_CONFIG; LORA_ERR_OUT_OF_MEMORY.
 * Threads: any; a tokenizer is immutable and may be shared by threads. Since: 0.3.0.
 */
LORA_API lora_status lora_tokenizer_load(const char *path, const char *config_json,
                                         lora_tokenizer **out);

/**
 * lora_model_tokenizer -- the tokenizer found in the model's folder (loaded on first use and
 * owned by the model). The caller gets a new reference: free it with lora_tokenizer_free().
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_IO (no tokenizer.json in the folder);
 * the statuses of lora_tokenizer_load. Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_model_tokenizer(lora_model *model, lora_tokenizer **out);

/** lora_tokenizer_free -- drops a reference; NULL is a no-op. Since: 0.3.0. */
LORA_API void lora_tokenizer_free(lora_tokenizer *tokenizer);

/** lora_tokenizer_vocab_size -- the number of ids (largest id + 1); 0 for NULL. Since: 0.3.0. */
LORA_API size_t lora_tokenizer_vocab_size(const lora_tokenizer *tokenizer);

/**
 * lora_tokenizer_info_json -- a JSON object: "vocab_size", "bos_token_id", "eos_token_id",
 * "pad_token_id" (null when absent), "bos_token", "eos_token", "pad_token", "chat_template"
 * (the built-in name in use, or null). Owned by the tokenizer; NULL if tokenizer is NULL.
 * Since: 0.3.0.
 */
LORA_API const char *lora_tokenizer_info_json(const lora_tokenizer *tokenizer);

/**
 * lora_tokenizer_encode -- text to ids, as Hugging Face's tokenizer(text,
 * add_special_tokens=False).
 *
 * IN  text, len  UTF-8 text of len bytes (need not be NUL-terminated).
 * IN  flags      LORA_ENCODE_* bits.
 * OUT ids        (cap) ids; may be NULL when cap is 0.
 * OUT n_out      the number of ids of the whole text, also when they do not fit.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_FORMAT (invalid UTF-8, naming the byte
 * offset, unless LORA_ENCODE_UTF8_REPLACE); LORA_ERR_RANGE (cap < *n_out: ids holds the first
 * cap; or the pre-tokenizer regex hit its match limit, which only a pathological pattern in a
 * hand-made tokenizer.json can); LORA_ERR_OUT_OF_MEMORY. Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_tokenizer_encode(const lora_tokenizer *tokenizer, const char *text,
                                           size_t len, unsigned flags, int32_t *ids,
                                           size_t cap, size_t *n_out);

/**
 * lora_tokenizer_decode -- ids to text. Byte sequences that are not valid UTF-8 become U+FFFD
 * (Hugging Face's errors="replace").
 * OUT text_out  a NUL-terminated string; free it with lora_string_free().
 * OUT len_out   NULL or its length in bytes.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_RANGE (an id outside the vocabulary,
 * named with its index); LORA_ERR_OUT_OF_MEMORY. Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_tokenizer_decode(const lora_tokenizer *tokenizer, const int32_t *ids,
                                           size_t n, unsigned flags, char **text_out,
                                           size_t *len_out);

/**
 * lora_tokenizer_token_id -- the id of a token given as its text (an added token such as
 * "<|im_end|>", or a vocabulary entry in byte-level form).
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_RANGE (no such token). Since: 0.3.0.
 */
LORA_API lora_status lora_tokenizer_token_id(const lora_tokenizer *tokenizer,
                                             const char *token, int32_t *id_out);

/**
 * lora_detokenizer_create -- a streaming decoder: feed ids one at a time, get text that only
 * ever holds complete UTF-8 characters (bytes of a character split across tokens are held
 * back until it is complete). The concatenated output equals lora_tokenizer_decode of all ids.
 * The detokenizer holds a reference to the tokenizer. Since: 0.3.0.
 */
LORA_API lora_status lora_detokenizer_create(lora_tokenizer *tokenizer, unsigned flags,
                                             lora_detokenizer **out);

/**
 * lora_detokenizer_push -- adds one id.
 * OUT text, len  the newly complete text (not NUL-terminated; len may be 0), owned by the
 *                detokenizer and valid until its next call.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_RANGE (id outside the vocabulary:
 * nothing changes). Threads: one caller per detokenizer. Since: 0.3.0.
 */
LORA_API lora_status lora_detokenizer_push(lora_detokenizer *detok, int32_t id,
                                           const char **text, size_t *len);

/**
 * lora_detokenizer_flush -- ends the stream: bytes still held back (an incomplete character)
 * come out as U+FFFD, and the detokenizer starts afresh. OUT as lora_detokenizer_push.
 * Since: 0.3.0.
 */
LORA_API lora_status lora_detokenizer_flush(lora_detokenizer *detok, const char **text,
                                            size_t *len);

/** lora_detokenizer_free -- NULL is a no-op. Since: 0.3.0. */
LORA_API void lora_detokenizer_free(lora_detokenizer *detok);

/* ------------------------------------------------------------------------------------------ */
/* Chat templates and prompts                                                                   */
/* ------------------------------------------------------------------------------------------ */

/**
 * lora_chat_render -- a conversation as the model's chat template renders it
 * (tokenizer.apply_chat_template(messages, tokenize=False, ...)), byte for byte.
 *
 * Built-in renderers: "qwen2.5" (ChatML; Qwen2.5's default system prompt "You are Qwen, created
 * by Alibaba Cloud. You are a helpful assistant." when none is given), "qwen3" (ChatML; an
 * assistant turn after the last user question shows its reasoning in a <think> block, taken
 * from "reasoning_content" or from the content's "<think>...</think>"; earlier turns lose
 * theirs), "llama3" (Llama 3.1/3.3 Instruct: bos, a system header with "Cutting Knowledge
 * Date: December 2023" and "Today Date: 26 Jul 2024", contents trimmed), "chatml" (ChatML, no
 * default system prompt), "smollm2" (ChatML; "You are a helpful AI assistant named SmolLM,
 * trained by Hugging Face" when no system message is given; since 0.3.0). The tokenizer's
 * template is recognised when its text (surrounding whitespace aside) is exactly one of those of
 * Qwen2.5-Instruct, Qwen3, Meta-Llama-3-Instruct (3.0: no system header of its own),
 * Llama-3.1/3.3-Instruct, Llama-3.2-Instruct (today's local date, as transformers'
 * strftime_now), SmolLM2-Instruct or transformers' ChatML example; any other text is
 * LORA_ERR_UNSUPPORTED, whose message lists the built-in names.
 *
 * IN  tokenizer      the tokenizer (its template, bos and eos token texts).
 * IN  messages_json  a non-empty JSON array of {"role": "system"|"user"|"assistant",
 *                    "content": "..."}; a system message only first. Assistant messages may
 *                    have "reasoning_content" (a string or null; used by qwen3). Tool roles
 *                    ("tool", "ipython", "function") and "tool_calls" are LORA_ERR_UNSUPPORTED;
 *                    other keys are ignored, as the templates ignore them.
 * IN  options_json   NULL or a JSON object (null values mean the default):
 *       "template"              a built-in name, overriding the tokenizer's template (and its
 *                               load option "chat_template")
 *       "format"                instead of a template, a format string: each user turn is the
 *                               format with {q} its content and {system} the system message
 *                               (in the first user turn; empty elsewhere and when there is
 *                               none); each assistant turn is " " + content + the eos token
 *                               text; turns follow each other with nothing between. E.g.
 *                               "Human: {q} Assistant:" gives "Human: Hi Assistant: Hello<eos>".
 *                               {q} is required; a system message needs {system} in the format
 *                               and a user turn after it.
 *       "add_generation_prompt" false (default) | true: end with the assistant turn's header
 *                               (nothing for a format string: a user turn ends where the reply
 *                               starts)
 *       "enable_thinking"       qwen3: true (default) | false (the generation prompt gets an
 *                               empty think block); other templates ignore it
 *       "date_string"           llama3: the "Today Date" (e.g. "26 Jul 2024"), as transformers'
 *                               date_string argument; other templates ignore it
 * OUT text_out       NUL-terminated; free with lora_string_free(). NULL on failure.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT (NULL); LORA_ERR_FORMAT (messages_json is not JSON,
 * or a malformed message: names its index, e.g. an unknown role); LORA_ERR_CONFIG (options:
 * names the key); LORA_ERR_UNSUPPORTED (unrecognised or missing template: lists the built-in
 * names and how to pick one; tool calling); LORA_ERR_OUT_OF_MEMORY. Threads: any.
 * Since: 0.3.0.
 */
LORA_API lora_status lora_chat_render(const lora_tokenizer *tokenizer, const char *messages_json,
                                      const char *options_json, char **text_out);

/**
 * lora_prompt_few_shot -- a few-shot prompt: k worked examples, then the question.
 *
 * IN  tokenizer      the tokenizer; may be NULL for a plain prompt.
 * IN  examples_json  a JSON array of {"q": "...", "a": "..."} (no other keys), possibly empty.
 * IN  question       UTF-8, NUL-terminated.
 * IN  options_json   NULL or a JSON object:
 *       "chat"     true: each example is a user turn and an assistant turn, the question a
 *                  last user turn, rendered by lora_chat_render with the generation prompt;
 *                  false: plain text. Default: true when there is a tokenizer with a chat
 *                  template (or a "template" option) and no "format" option.
 *       "system"   a system message (chat) or a first paragraph (plain)
 *       "format"   plain text's format of one example, default "Question: {q}\nAnswer: {a}",
 *                  {q} before {a}; examples are separated by a blank line, and the question
 *                  ends the prompt with the format's text before {a}, less trailing spaces
 *                  and tabs ("Question: ...\nAnswer:")
 *       and, for chat, lora_chat_render's "template", "enable_thinking", "date_string".
 * OUT text_out       NUL-terminated; free with lora_string_free().
 * Returns as lora_chat_render (LORA_ERR_FORMAT for malformed examples, naming the index;
 * LORA_ERR_CONFIG for options that contradict "chat"). Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_prompt_few_shot(const lora_tokenizer *tokenizer,
                                          const char *examples_json, const char *question,
                                          const char *options_json, char **text_out);

/* ------------------------------------------------------------------------------------------ */
/* Datasets                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/**
 * lora_dataset_load -- reads a JSONL file of training samples and tokenizes it.
 *
 * Each line is one JSON object: {"messages": [{"role", "content"}, ...]} (system, user and
 * assistant turns, rendered with the chat template), {"prompt", "completion"}, or {"text"}.
 * Labels follow TRL's SFTTrainer: with "loss": "assistant" (default) only the assistant turns'
 * tokens count, each turn's end-of-turn token included (for prompt/completion: the completion
 * and the eos token; for text: every token); "all" counts every token. Labels are aligned with
 * ids (labels[t] is ids[t] or -100); the model shifts them.
 *
 * IN  tokenizer    the tokenizer (held by the dataset).
 * IN  path         the JSONL file.
 * IN  config_json  NULL or a JSON object:
 *       "format"      "auto" (default: from each line's keys) | "messages" |
 *                     "prompt_completion" | "text"
 *       "loss"        "assistant" (default) | "all"
 *       "max_length"  tokens per sample, longer ones are truncated on the right (default 1024)
 *       "packing"     false (default) | true: samples laid end to end into rows of
 *                     max_length, with position ids restarting at each sample
 *                     (lora_train_step_packed); a sample is never split across rows
 *       "shuffle"     true (default): a new order every epoch, from "seed" (default 0)
 *       "strict"      true (default): a bad line fails the load, naming file and line;
 *                     false: bad lines are skipped and counted
 *       "chat"        an object of lora_chat_render options ("template", "format",
 *                     "enable_thinking")
 * OUT out          the dataset or NULL.
 * A bad line is invalid JSON or UTF-8, a missing or mistyped field, an unknown role, an empty
 * assistant turn, a sample with no token in the loss after its first (once truncated), or a
 * line over 4 MiB. Blank lines are skipped; CRLF endings are accepted. Packing is best-fit
 * decreasing; a packed sample's first label is -100. See docs/datasets.md.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_IO; LORA_ERR_FORMAT (a bad line, strict:
 * "FILE:LINE: ..."; or no usable line at all); LORA_ERR_CONFIG; LORA_ERR_UNSUPPORTED (chat
 * template); LORA_ERR_OUT_OF_MEMORY. Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_dataset_load(lora_tokenizer *tokenizer, const char *path,
                                       const char *config_json, lora_dataset **out);

/**
 * lora_dataset_split -- splits a dataset into train and test parts, as Hugging Face's
 * train_test_split: test_size in (0, 1) is a fraction rounded up, >= 1 a count; the split is
 * a seeded permutation of the samples (its first n_test are the test part). Both parts are new
 * datasets with the parent's options, their rows in file order, sharing the parent's
 * tokenized samples (either may be freed first).
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_CONFIG (a test_size leaving a part
 * empty); LORA_ERR_OUT_OF_MEMORY. Since: 0.3.0.
 */
LORA_API lora_status lora_dataset_split(const lora_dataset *dataset, double test_size,
                                        uint64_t seed, lora_dataset **train_out,
                                        lora_dataset **test_out);

/** lora_dataset_free -- NULL is a no-op. Since: 0.3.0. */
LORA_API void lora_dataset_free(lora_dataset *dataset);

/** lora_dataset_size -- the number of rows (samples, or packed rows); 0 for NULL.
 * Since: 0.3.0. */
LORA_API size_t lora_dataset_size(const lora_dataset *dataset);

/**
 * lora_dataset_stats_json -- a JSON object: "lines" (non-blank lines of the file), "samples",
 * "skipped" (bad lines in lenient mode), "truncated", "rows", "tokens", "loss_tokens" (labels
 * other than -100 in the rows), "loss_share" (loss_tokens / tokens), "max_length",
 * "first_errors" (the messages of the first 5 bad lines skipped). Owned by the dataset; NULL
 * if dataset is NULL. Since: 0.3.0.
 */
LORA_API const char *lora_dataset_stats_json(const lora_dataset *dataset);

/**
 * lora_dataset_row -- row i (file order) copied out: ids, labels and position ids of its n
 * tokens.
 * OUT ids, labels, position_ids  (cap) each; position_ids may be NULL.
 * OUT len_out                    n, also when it does not fit.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_RANGE (i >= size, or cap < n).
 * Since: 0.3.0.
 */
LORA_API lora_status lora_dataset_row(const lora_dataset *dataset, size_t i, int32_t *ids,
                                      int32_t *labels, int32_t *position_ids, size_t cap,
                                      size_t *len_out);

/**
 * lora_dataset_next_batch -- the next batch rows of the current epoch's order, right-padded
 * to the longest of them (pad_token_id, else eos; labels -100; position ids counting on).
 * At the end of an epoch the batch is cut short; the next call starts the next epoch (with a
 * new order when shuffling).
 * OUT ids, labels, position_ids  (cap) each, laid out (rows, seq); position_ids may be NULL.
 *                                batch * max_length always fits.
 * OUT seq_out, rows_out          the batch's shape (also on LORA_ERR_RANGE: the shape that
 *                                did not fit).
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT (NULL, batch 0); LORA_ERR_RANGE (cap too small:
 * the position does not move). Threads: one caller per dataset. Since: 0.3.0.
 */
LORA_API lora_status lora_dataset_next_batch(lora_dataset *dataset, size_t batch, int32_t *ids,
                                             int32_t *labels, int32_t *position_ids, size_t cap,
                                             size_t *seq_out, size_t *rows_out);

/**
 * lora_dataset_position, lora_dataset_seek -- where lora_dataset_next_batch stands, as one
 * number (epoch * size + index), for lora_optimizer_save_checkpoint's data_position: seeking
 * to a saved position resumes the same order. Seek returns LORA_OK or
 * LORA_ERR_INVALID_ARGUMENT. Since: 0.3.0.
 */
LORA_API uint64_t lora_dataset_position(const lora_dataset *dataset);
/** See lora_dataset_position(). Since: 0.3.0. */
LORA_API lora_status lora_dataset_seek(lora_dataset *dataset, uint64_t position);

/* ------------------------------------------------------------------------------------------ */
/* Evaluation                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/**
 * lora_answer_extract -- the final answer in a model's output, normalised.
 *
 * The answer is, by the first rule that finds one:
 *   1. the content of the last complete \boxed{...} or \fbox{...} (spaces allowed before the
 *      brace; braces balanced, \{ and \} literal), the last to open among those that close:
 *      a box that never closes (output cut off) gives way to the one before it; a box whose
 *      content normalises to nothing ("\boxed{}") is no answer, and the next rules apply;
 *   2. the line after the last "####" (GSM8K's answer marker), if it normalises to a number
 *      (otherwise the marker is taken for a Markdown heading and ignored);
 *   3. the last number in the text: digits with optional thousands groups ("1,234,567"),
 *      optional decimals ("3.25", ".5"), or an integer fraction ("3/4"); a '-', '+' or U+2212
 *      directly before it is its sign unless a letter or digit precedes that ("x = -5" gives
 *      -5, "3-5" gives 5). No exponents.
 * The answer found is normalised as by lora_answer_normalize ("\boxed{\$1,234.00}" gives
 * "1234", "#### 1,234" gives "1234", "The answer is 42." gives "42").
 *
 * IN  text, len   len bytes of UTF-8 text (need not be NUL-terminated).
 * OUT answer_out  the answer, NUL-terminated, to free with lora_string_free(); NULL when the
 *                 text holds no answer (then the call still returns LORA_OK).
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT (NULL text with len > 0, NULL answer_out);
 * LORA_ERR_OUT_OF_MEMORY. Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_answer_extract(const char *text, size_t len, char **answer_out);

/**
 * lora_answer_normalize -- an answer in the canonical spelling lora_answer_match compares.
 *
 * In order: LaTeX is simplified (\text, \textbf, \mathrm, \mathbf, \mbox, \boxed and similar
 * wrappers give their argument; \frac{a}{b}, \dfrac, \tfrac and \frac12 give "a/b", with a side
 * in parentheses unless it is a plain number or name; \left, \right, \displaystyle, the
 * spaces \, \; \: \! and degree signs ^\circ, \circ, U+00B0 are dropped; "{,}" becomes ",";
 * "\ " and "~" become spaces); '$', '\$', '%' and '\%' are dropped (this step repeats until it
 * changes nothing, at most 8 times, so that a normalised answer normalises to itself); then,
 * until nothing changes:
 * whitespace runs become one space and the ends are trimmed, one pair of braces around the
 * whole is removed, everything up to the last '=' is removed ("x = 5" gives "5"), and
 * trailing '.', ',', ';', ':', '!' are removed. Last, a number is rewritten canonically:
 * the sign '+' dropped and U+2212 read as '-', thousands separators removed (groups of three
 * after a first group of 1-3 digits not starting with 0: "1,234" but not "1,23" or "0,123"),
 * leading zeros and trailing decimal zeros removed ("007" gives "7", "5.00" gives "5", "5.50"
 * "5.5", ".5" "0.5"), "-0" gives "0"; an integer fraction keeps its form with each side so
 * rewritten ("-\frac{1}{2}" gives "-1/2"; a zero denominator leaves it text); a unit of
 * letters after a space is dropped ("18 dollars" gives "18", "5\text{ cm}" gives "5").
 * Anything else is kept as text, case and all.
 *
 * IN  answer          NUL-terminated UTF-8.
 * OUT normalized_out  NUL-terminated (possibly ""), to free with lora_string_free(); NULL on
 *                     failure.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT (NULL); LORA_ERR_OUT_OF_MEMORY.
 * Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_answer_normalize(const char *answer, char **normalized_out);

/**
 * lora_answer_match -- whether a predicted answer equals the reference.
 *
 * Both are normalised (lora_answer_normalize; a GSM8K reference solution should go through
 * lora_answer_extract first, for its "####" line). Two integers match when their digits do
 * (any length, exactly); two numbers of which one is a decimal or a fraction match when their
 * values differ by at most 1e-9 relative ("0.5" matches "1/2" and "\frac{2}{4}"; "0.333"
 * does not match "1/3"); anything else matches only when the normalised texts are equal
 * byte for byte ("Monday" does not match "monday").
 *
 * IN  predicted   NUL-terminated, or NULL for "no answer" (lora_answer_extract found none):
 *                 then *match_out is 0.
 * IN  reference   NUL-terminated.
 * OUT match_out   1 for a match, else 0.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT (NULL reference or match_out);
 * LORA_ERR_OUT_OF_MEMORY. Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_answer_match(const char *predicted, const char *reference,
                                       int *match_out);

/**
 * lora_pass_at_k -- the unbiased pass@k estimate of one question from n rollouts of which c
 * are correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k), the probability that k rollouts
 * drawn without replacement from the n include a correct one.
 *
 * Computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i) (or the equal product over k factors
 * 1 - c/(n-j), whichever is shorter), summed in logarithms: no binomial is formed, so any n
 * is exact to rounding. 1 when n - c < k; 0 when c = 0; c/n when k = 1.
 *
 * IN  n, c, k   1 <= k <= n, c <= n.
 * OUT pass_out  the estimate in [0, 1].
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT (NULL pass_out, n = 0, k = 0, k > n, c > n).
 * Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_pass_at_k(size_t n, size_t c, size_t k, double *pass_out);

/**
 * lora_pass_at_k_table -- pass@k and avg@k over a set of questions, for k = 1..rollouts.
 *
 * pass@k is the mean over questions of lora_pass_at_k(rollouts, c_q, k), c_q the question's
 * correct rollouts. avg@k is the mean over questions of the fraction correct among the
 * question's first k rollouts, in the order given: the accuracy a run of k rollouts per
 * question reports ("avg@k" / "mean@k"); avg@rollouts = pass@1 = the mean of c_q / rollouts,
 * and for every k the expected avg@k is pass@1 (avg@k varies with k only by sampling noise).
 *
 * IN  correct    (questions, rollouts) row-major outcomes: non-zero is a correct rollout.
 * IN  questions, rollouts  both >= 1.
 * OUT json_out   NULL, or a JSON object to free with lora_string_free():
 *                {"questions": Q, "rollouts": n, "correct": total correct rollouts,
 *                 "solved": questions with at least one, "table": [{"k": 1, "pass_at_k": x,
 *                 "avg_at_k": y}, ... for k = 1..n]}.
 * OUT text_out   NULL, or the same table as text to free with lora_string_free(): a header
 *                line "k  pass@k  avg@k" and one line per k, values as fractions with 4
 *                decimals, columns right-aligned and separated by two spaces; e.g. one
 *                question with outcomes 0, 1, 0, 1 gives
 *                "k    pass@k     avg@k\n1    0.5000    0.0000\n2    0.8333    0.5000\n"
 *                "3    1.0000    0.3333\n4    1.0000    0.5000\n".
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT (NULL correct, both outs NULL, a zero size,
 * questions * rollouts overflowing); LORA_ERR_OUT_OF_MEMORY (both outs NULL then).
 * Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_pass_at_k_table(const uint8_t *correct, size_t questions,
                                          size_t rollouts, char **json_out, char **text_out);

/**
 * lora_forecast_metrics -- errors of a forecast (e.g. LLMTIME text decoded with
 * lora_llmtime_decode) against the true values, computed in double:
 * MSE = mean (pred - truth)^2, MAE = mean |pred - truth|,
 * R^2 = 1 - SS_res / SS_tot with SS_res = sum (pred - truth)^2 and SS_tot = sum (truth -
 * mean truth)^2. When every truth value is the same (SS_tot = 0), R^2 is 1 for a perfect
 * forecast and 0 otherwise, as scikit-learn's r2_score. A multivariate series is passed
 * flattened; compare only the steps the forecast has (lora_llmtime_decode's *steps_out).
 *
 * IN  pred, truth  (n) values each, n >= 1.
 * OUT mse_out, mae_out, r2_out  each NULL or the metric.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT (NULL pred or truth, n = 0); LORA_ERR_NUMERIC (a
 * non-finite value, named by array and index; nothing is written).
 * Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_forecast_metrics(const float *pred, const float *truth, size_t n,
                                           double *mse_out, double *mae_out, double *r2_out);

/**
 * lora_flops_json -- floating-point operations per token and per step of a model, with or
 * without a LoRA adapter, at a context length: forward, and training (forward + backward).
 *
 * Every matrix product counts 2 FLOPs per multiply-add; counts are per token and exact
 * integers. With C hidden, I intermediate, L layers, H heads, KVH kv heads, D head_dim, V
 * vocabulary, T the context:
 *   projections  L x sum over q, k, v, o, gate, up, down of 2 x in x out
 *   lm_head      2 C V (logits at every position, as training computes them)
 *   attention    scores q.k and the weighted sum of v, 4 H D per key seen; a causal query
 *                at position t sees t + 1 keys, so the mean over a row of T tokens is
 *                L x 2 H D (T + 1) ("attention"; "attention_full_context" is L x 4 H D T,
 *                a query that sees all T, i.e. decoding at the end of the context)
 *   adapter      2 r (in + out) per adapted projection (x A^T, then B^T)
 *   forward      projections + lm_head + attention + adapter
 * Training: "adapters" mode (lora_config_json given: frozen base weights) adds a backward of
 * projections + lm_head (input gradients only), 2 x attention and 2 x adapter, so
 * train = 2 (projections + lm_head) + 3 attention + 3 adapter; "full" mode (no
 * lora_config_json) adds 2 (projections + lm_head) + 2 attention: train = 3 x forward.
 * Per step = per token x batch x context (every position of full rows). These are model
 * FLOPs (what MFU counts): work that activation recomputation repeats is not included.
 * Element-wise work (RMSNorm, RoPE, SwiGLU, softmax, residual adds, biases, LoRA scaling) is
 * reported separately and is not in the sums; see docs/evaluation.md for its per-element
 * costs. Relation to the rules of thumb: with N the parameter count, forward ~ 2N and full
 * training ~ 6N, exactly 2 and 6 x matmul_parameters (every weight matrix, the tied embedding
 * once as lm_head, an untied input embedding not at all: a lookup) plus the attention terms.
 * For Qwen2.5-0.5B at T = 1024 with r = 16 on all seven projections: forward 1.050 GFLOP per
 * token, LoRA training 2.161 GFLOP, full training 3.096 GFLOP (2N = 0.988 GFLOP, 6N = 2.964).
 *
 * IN  model             a loaded model, or NULL to use config_json.
 * IN  config_json       NULL with a model, else a Hugging Face config.json's text (validated
 *                       as by lora_model_load).
 * IN  lora_config_json  NULL (full fine-tuning) or PEFT LoraConfig keys as for
 *                       lora_adapter_create ("{}" is PEFT's default adapter).
 * IN  context           tokens per row, 1..max_position_embeddings.
 * IN  batch             rows per step, >= 1.
 * OUT json_out          a JSON object to free with lora_string_free(); NULL on failure:
 *   {"model_type", "context", "batch", "tokens_per_step", "parameters", "matmul_parameters",
 *    "adapter_parameters" (0 without an adapter),
 *    "forward": {"per_token", "per_step", "projections", "lm_head", "attention",
 *                "attention_full_context", "adapter", "per_layer": {"q_proj": ..., one
 *                layer's 2 x in x out for each of the seven}, "elementwise": {"rmsnorm",
 *                "rope", "swiglu", "softmax", "residual", "bias", "adapter", "total"}},
 *    "train": {"mode": "adapters" | "full", "per_token", "per_step", "forward_per_token",
 *              "backward_per_token"},
 *    "rule_of_thumb": {"forward_2N", "train_6N"}}.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT (NULL json_out, neither or both of model and
 * config_json, context or batch 0); LORA_ERR_FORMAT (config_json is not JSON);
 * LORA_ERR_CONFIG (a config.json value, or a LoraConfig key or value: names it);
 * LORA_ERR_UNSUPPORTED (model_type, LoraConfig features); LORA_ERR_RANGE (context past
 * max_position_embeddings, a count past 2^63); LORA_ERR_OUT_OF_MEMORY.
 * Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_flops_json(const lora_model *model, const char *config_json,
                                     const char *lora_config_json, size_t context,
                                     size_t batch, char **json_out);

/**
 * lora_mfu -- achieved FLOP/s and model FLOPs utilisation of a run:
 * flops_per_s = flops_per_token x tokens_per_s, mfu = flops_per_s / peak_flops_per_s
 * (a fraction; e.g. lora_flops_json's train.per_token, a training run's tokens per second and
 * the device's peak dense FLOP/s for the dtype used).
 *
 * IN  flops_per_token, tokens_per_s  finite, >= 0.
 * IN  peak_flops_per_s               finite, > 0.
 * OUT flops_per_s_out, mfu_out       each NULL or the value.
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT (a negative value, peak <= 0); LORA_ERR_NUMERIC
 * (a non-finite value). Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_mfu(double flops_per_token, double tokens_per_s,
                              double peak_flops_per_s, double *flops_per_s_out,
                              double *mfu_out);

/* ------------------------------------------------------------------------------------------ */
/* Time series as text (LLMTIME)                                                                */
/* ------------------------------------------------------------------------------------------ */

/**
 * lora_llmtime_encode -- a multivariate series as text, as in LLMTIME: every value times alpha
 * with fixed decimals, "," between the dimensions of a time step, ";" between time steps.
 *
 * IN  values        (steps, dims) row-major; steps, dims > 0.
 * IN  options_json  NULL or a JSON object:
 *       "alpha"     the scale (> 0); default target / max |value| (1 when all are 0)
 *       "target"    default 10 (> 0); not together with "alpha"
 *       "decimals"  0..9, default 2
 * OUT text_out      NUL-terminated; free with lora_string_free().
 * OUT alpha_out     NULL or the alpha used (to decode with).
 * Each number is printf("%.*f", decimals, (double)value * alpha): the decimal nearest to that
 * double, exact binary ties to even (as Python's format), a '-' kept for negative values, even
 * those that round to zero ("-0.00").
 * Example: [[1,2],[2,4],[3,6]] gives alpha 10/6 and "1.67,3.33;3.33,6.67;5.00,10.00".
 * Returns LORA_OK; LORA_ERR_INVALID_ARGUMENT; LORA_ERR_NUMERIC (a non-finite value or alpha, or
 * a value times alpha overflowing, named by step and dim); LORA_ERR_CONFIG (names the key);
 * LORA_ERR_OUT_OF_MEMORY. Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_llmtime_encode(const float *values, size_t steps, size_t dims,
                                         const char *options_json, char **text_out,
                                         double *alpha_out);

/**
 * lora_llmtime_decode -- text back to values (each divided by alpha). Tolerates a model's
 * output: it reads time steps in order and stops at the first that is not well formed, so the
 * result is the well-formed prefix. A step is dims numbers separated by ",", ended by ";" or
 * the end of the text; spaces, tabs and newlines around numbers are allowed. A number is
 * [+-]digits[.digits] (no exponent, read without the locale) with as many decimals as the
 * text's first number: the encoder writes fixed decimals, so "1.67,3.3" (dims 2) is a cut-off
 * number and decodes to 0 steps, "1.67,3.33;3.3" to 1. Anything else (stray text, a step with
 * too few or too many numbers, a value beyond float range) ends the decoding before its step.
 * IN  text, len  len bytes of text (need not be NUL-terminated).
 * OUT values     (cap) row-major (steps, dims); floats past the decoded steps are untouched.
 * IN  cap        capacity of values in floats.
 * OUT steps_out  the number of whole time steps decoded (at most cap / dims).
 * Returns LORA_OK (also for 0 steps); LORA_ERR_INVALID_ARGUMENT (NULL, dims 0, alpha not
 * finite and positive). Threads: any. Since: 0.3.0.
 */
LORA_API lora_status lora_llmtime_decode(const char *text, size_t len, double alpha,
                                         size_t dims, float *values, size_t cap,
                                         size_t *steps_out);

#ifdef __cplusplus
}
#endif
#endif /* LORA_H */
