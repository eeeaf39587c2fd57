/* forecast -- time series forecasting as text (LLMTIME), as in the forecasting coursework:
 * simulated Lotka-Volterra predator-prey trajectories are written as text, a LoRA adapter on
 * the q and v projections is trained on them, and the last 20 of 100 steps are forecast from
 * the first 80, by the base model and with the adapter.
 *
 *   cc forecast.c $(pkg-config --cflags --libs lora) -lm -o forecast
 *   ./forecast MODEL_DIR OUT_DIR [TRAIN_TRAJECTORIES [EPOCHS [LR]]]
 *
 * Writes OUT_DIR/adapter (PEFT), OUT_DIR/forecast.svg (one trajectory: truth and both
 * forecasts), OUT_DIR/first_context.txt (that trajectory's prompt) and prints MSE, MAE and
 * R^2 over the test trajectories.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lora.h>

#define STEPS 100
#define CONTEXT 80
#define HORIZON (STEPS - CONTEXT)
#define DIMS 2
#define TESTS 10
#define MAX_TOKENS 2048
#define MAX_TRAIN 1000

typedef float series[STEPS][DIMS];

static int fail(const char *what, lora_status st)
{
    fprintf(stderr, "%s: %s: %s\n", what, lora_status_string(st), lora_last_error());
    return 1;
}

/* splitmix64: a seeded uniform in [lo, hi) */
static double uniform(uint64_t *s, double lo, double hi)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return lo + (hi - lo) * (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* prey x and predator y: dx = a x - b x y, dy = d x y - g y, RK4, 4 substeps per step */
static void lotka_volterra(uint64_t *rng, series out)
{
    double a = uniform(rng, 0.8, 1.2), b = uniform(rng, 0.35, 0.5);
    double d = uniform(rng, 0.08, 0.12), g = uniform(rng, 0.35, 0.5);
    double x = uniform(rng, 2, 6), y = uniform(rng, 1, 3), h = 0.25 / 4;
    for (int t = 0; t < STEPS; t++) {
        out[t][0] = (float)x;
        out[t][1] = (float)y;
        for (int k = 0; k < 4; k++) {
            double k1x = a * x - b * x * y, k1y = d * x * y - g * y;
            double x2 = x + h / 2 * k1x, y2 = y + h / 2 * k1y;
            double k2x = a * x2 - b * x2 * y2, k2y = d * x2 * y2 - g * y2;
            double x3 = x + h / 2 * k2x, y3 = y + h / 2 * k2y;
            double k3x = a * x3 - b * x3 * y3, k3y = d * x3 * y3 - g * y3;
            double x4 = x + h * k3x, y4 = y + h * k3y;
            double k4x = a * x4 - b * x4 * y4, k4y = d * x4 * y4 - g * y4;
            x += h / 6 * (k1x + 2 * k2x + 2 * k3x + k4x);
            y += h / 6 * (k1y + 2 * k2y + 2 * k3y + k4y);
        }
    }
}

/* LLMTIME's alpha from the context alone: the forecast must not see the future's scale. */
static double context_alpha(series s)
{
    float top = 0;
    for (int t = 0; t < CONTEXT; t++)
        for (int k = 0; k < DIMS; k++) top = fabsf(s[t][k]) > top ? fabsf(s[t][k]) : top;
    return 10.0 / top;
}

static lora_status encode(series s, int steps, double alpha, char **text)
{
    char opts[64];
    snprintf(opts, sizeof opts, "{\"alpha\": %.17g}", alpha);
    return lora_llmtime_encode(&s[0][0], (size_t)steps, DIMS, opts, text, NULL);
}

/* The forecast of the last HORIZON steps. Steps the model did not write (it stopped early or
 * wrote something else) repeat the last value it did write, or the context's last value. */
static lora_status forecast(lora_session *s, lora_sampler *smp, lora_tokenizer *tok,
                            series in, float out[HORIZON][DIMS])
{
    double alpha = context_alpha(in);
    char *context = NULL, *text = NULL, prompt[MAX_TOKENS];
    int32_t ids[MAX_TOKENS], gen[HORIZON * 12];
    size_t n = 0, n_gen = 0, len = 0, got = 0;
    lora_status st = encode(in, CONTEXT, alpha, &context);
    if (st == LORA_OK) {
        snprintf(prompt, sizeof prompt, "%s;", context); /* the next step follows */
        st = lora_tokenizer_encode(tok, prompt, strlen(prompt), 0, ids, MAX_TOKENS, &n);
    }
    lora_session_reset(s);
    if (st == LORA_OK) st = lora_generate(s, smp, ids, n, gen, HORIZON * 12, &n_gen, NULL, NULL);
    if (st == LORA_OK) st = lora_tokenizer_decode(tok, gen, n_gen, LORA_DECODE_SKIP_SPECIAL, &text, &len);
    if (st == LORA_OK) st = lora_llmtime_decode(text, len, alpha, DIMS, &out[0][0], HORIZON * DIMS, &got);
    for (size_t t = got; st == LORA_OK && t < HORIZON; t++)
        for (int k = 0; k < DIMS; k++) out[t][k] = t ? out[t - 1][k] : in[CONTEXT - 1][k];
    lora_string_free(context);
    lora_string_free(text);
    return st;
}

/* MSE, MAE, R^2 of the forecasts of every test trajectory, taken together. */
static lora_status evaluate(lora_session *s, lora_sampler *smp, lora_tokenizer *tok,
                            series *test, float pred[TESTS][HORIZON][DIMS], double m[3])
{
    static float truth[TESTS][HORIZON][DIMS];
    lora_status st = LORA_OK;
    for (int i = 0; i < TESTS && st == LORA_OK; i++) {
        memcpy(truth[i], &test[i][CONTEXT], sizeof truth[i]);
        st = forecast(s, smp, tok, test[i], pred[i]);
    }
    if (st == LORA_OK)
        st = lora_forecast_metrics(&pred[0][0][0], &truth[0][0][0], TESTS * HORIZON * DIMS,
                                   &m[0], &m[1], &m[2]);
    return st;
}

/* One test trajectory: the true prey and predator over 100 steps, and both forecasts. */
static void plot(const char *path, series truth, float base[HORIZON][DIMS],
                 float tuned[HORIZON][DIMS])
{
    FILE *f = fopen(path, "w");
    if (!f) return;
    float top = 0;
    for (int t = 0; t < STEPS; t++)
        for (int k = 0; k < DIMS; k++) top = fmaxf(top, truth[t][k]);
    for (int t = 0; t < HORIZON; t++)
        for (int k = 0; k < DIMS; k++) top = fmaxf(top, fmaxf(base[t][k], tuned[t][k]));
    const char *names[3] = {"truth", "base model", "LoRA adapter"};
    const char *colors[3] = {"#222222", "#d62728", "#1f77b4"};
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"360\" "
            "font-family=\"sans-serif\" font-size=\"12\"><rect width=\"720\" height=\"360\" "
            "fill=\"white\"/><text x=\"360\" y=\"20\" text-anchor=\"middle\">Lotka-Volterra: "
            "forecast of steps 80-99 (solid prey, dashed predator)</text>"
            "<line x1=\"%.1f\" y1=\"30\" x2=\"%.1f\" y2=\"330\" stroke=\"#aaa\"/>",
            40 + 660.0 * CONTEXT / (STEPS - 1), 40 + 660.0 * CONTEXT / (STEPS - 1));
    for (int c = 0; c < 3; c++) {
        for (int k = 0; k < DIMS; k++) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"%s points=\"",
                    colors[c], k ? " stroke-dasharray=\"5,3\"" : "");
            for (int t = c ? CONTEXT - 1 : 0; t < STEPS; t++) {
                float v = !c || t < CONTEXT ? truth[t][k] : c == 1 ? base[t - CONTEXT][k]
                                                                    : tuned[t - CONTEXT][k];
                fprintf(f, "%.1f,%.1f ", 40 + 660.0 * t / (STEPS - 1), 330 - 290.0 * v / top);
            }
            fprintf(f, "\"/>");
        }
        fprintf(f, "<text x=\"50\" y=\"%d\" fill=\"%s\">%s</text>", 45 + 15 * c, colors[c],
                names[c]);
    }
    fprintf(f, "</svg>\n");
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR OUT_DIR [TRAIN_TRAJECTORIES [EPOCHS [LR]]]\n",
                argv[0]);
        return 2;
    }
    int n_train = argc > 3 ? atoi(argv[3]) : 320, epochs = argc > 4 ? atoi(argv[4]) : 3;
    double lr = argc > 5 ? atof(argv[5]) : 1e-2;
    if (n_train < 1 || n_train > MAX_TRAIN || epochs < 1 || !(lr > 0))
        return fprintf(stderr, "bad sizes or learning rate\n"), 2;
    static series train[MAX_TRAIN], test[TESTS];
    static float base_pred[TESTS][HORIZON][DIMS], tuned_pred[TESTS][HORIZON][DIMS];
    /* the test trajectories have their own seed: the same ones whatever the training size */
    uint64_t rng = 2024, test_rng = 7;
    for (int i = 0; i < n_train; i++) lotka_volterra(&rng, train[i]);
    for (int i = 0; i < TESTS; i++) lotka_volterra(&test_rng, test[i]);
    mkdir(argv[2], 0755);

    /* the training series as {"text": ...} lines: every token in the loss */
    char path[4096];
    snprintf(path, sizeof path, "%s/lv_train.jsonl", argv[2]);
    FILE *f = fopen(path, "w");
    if (!f) return perror(path), 1;
    lora_status st = LORA_OK;
    for (int i = 0; i < n_train && st == LORA_OK; i++) {
        char *text = NULL;
        if ((st = encode(train[i], STEPS, context_alpha(train[i]), &text)) == LORA_OK)
            fprintf(f, "{\"text\": \"%s\"}\n", text);
        lora_string_free(text);
    }
    fclose(f);
    if (st != LORA_OK) return fail("lora_llmtime_encode", st);

    lora_model *model = NULL;
    lora_tokenizer *tok = NULL;
    lora_session *s = NULL;
    lora_sampler *smp = NULL;
    lora_dataset *data = NULL;
    lora_adapter *adapter = NULL;
    lora_optimizer *opt = NULL;
    double base[3], tuned[3];
    float one = 1.0f;
    int rc = 0;
    if ((st = lora_model_load(argv[1], NULL, &model)) != LORA_OK ||
        (st = lora_model_tokenizer(model, &tok)) != LORA_OK ||
        (st = lora_session_create(model, NULL, &s)) != LORA_OK ||
        (st = lora_sampler_create("{\"max_new_tokens\": 240}", &smp)) != LORA_OK)
        rc = fail("setup", st);
    else if ((st = evaluate(s, smp, tok, test, base_pred, base)) != LORA_OK)
        rc = fail("base forecasts", st);
    /* LoRA on q_proj and v_proj, as in the coursework */
    else if ((st = lora_dataset_load(tok, path, "{\"max_length\": 1100, \"loss\": \"all\", "
                                     "\"seed\": 3}", &data)) != LORA_OK ||
             (st = lora_adapter_create(model, "{\"r\": 16, \"lora_alpha\": 32, "
                                       "\"target_modules\": [\"q_proj\", \"v_proj\"]}", 7,
                                       &adapter)) != LORA_OK ||
             (st = lora_session_set_adapters(s, &adapter, &one, 1)) != LORA_OK)
        rc = fail("adapter", st);
    if (rc == 0) {
        size_t steps = (lora_dataset_size(data) + 3) / 4 * (size_t)epochs;
        char cfg[200];
        snprintf(cfg, sizeof cfg, "{\"lr\": %g, \"weight_decay\": 0.0, \"lr_scheduler_type\": "
                 "\"cosine\", \"warmup_ratio\": 0.05, \"num_training_steps\": %zu, "
                 "\"max_grad_norm\": 1.0}", lr, steps);
        if ((st = lora_optimizer_create(s, cfg, &opt)) != LORA_OK) rc = fail("optimizer", st);
        static int32_t ids[4 * 1100], labels[4 * 1100], pos[4 * 1100];
        for (size_t i = 0; rc == 0 && i < steps; i++) {
            size_t seq, rows;
            float loss;
            if ((st = lora_dataset_next_batch(data, 4, ids, labels, pos, 4 * 1100, &seq, &rows)) ||
                (st = lora_train_step_packed(opt, ids, labels, pos, rows, seq, &loss)))
                rc = fail("training", st);
            else if ((i + 1) % (steps / (size_t)epochs) == 0)
                printf("epoch %zu: loss %.4f\n", (i + 1) / (steps / (size_t)epochs), loss);
        }
    }
    if (rc == 0 && (st = evaluate(s, smp, tok, test, tuned_pred, tuned)) != LORA_OK)
        rc = fail("adapter forecasts", st);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/adapter", argv[2]);
        if ((st = lora_adapter_save(adapter, path)) != LORA_OK) rc = fail("save", st);
        /* the first test prompt, for a host program to send (make demo does) */
        char *context = NULL;
        snprintf(path, sizeof path, "%s/first_context.txt", argv[2]);
        if (encode(test[0], CONTEXT, context_alpha(test[0]), &context) == LORA_OK &&
            (f = fopen(path, "w"))) {
            fprintf(f, "context: %s;\n", context);
            fclose(f);
        }
        lora_string_free(context);
        snprintf(path, sizeof path, "%s/forecast.svg", argv[2]);
        plot(path, test[0], base_pred[0], tuned_pred[0]);
        printf("forecast of %d steps from %d, %d test trajectories:\n", HORIZON, CONTEXT, TESTS);
        printf("            MSE       MAE       R^2\n");
        printf("base     %8.4f  %8.4f  %8.4f\n", base[0], base[1], base[2]);
        printf("adapter  %8.4f  %8.4f  %8.4f\n", tuned[0], tuned[1], tuned[2]);
        printf("wrote %s/adapter and %s\n", argv[2], path);
    }
    lora_optimizer_free(opt);
    lora_adapter_free(adapter);
    lora_dataset_free(data);
    lora_sampler_free(smp);
    lora_session_free(s);
    lora_tokenizer_free(tok);
    lora_model_free(model);
    return rc;
}
