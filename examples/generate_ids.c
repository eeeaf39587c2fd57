/* generate_ids -- the smallest liblora program: load a checkpoint folder and greedily generate
 * 16 tokens after the prompt ids 1..5.
 *
 *   cc generate_ids.c $(pkg-config --cflags --libs lora) -o generate_ids
 *   ./generate_ids path/to/checkpoint
 */
#include <stdio.h>

#include <lora.h>

/* Prints the failing call and liblora's message, returns 1. */
static int fail(const char *what, lora_status st)
{
    fprintf(stderr, "%s: %s: %s\n", what, lora_status_string(st), lora_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CHECKPOINT_DIR\n", argv[0]);
        return 2;
    }
    lora_model *model = NULL;
    lora_session *session = NULL;
    lora_sampler *sampler = NULL;
    const int32_t prompt[] = {1, 2, 3, 4, 5};
    int32_t out[16];
    size_t n_out = 0;
    int rc = 0;
    lora_status st;

    if ((st = lora_model_load(argv[1], NULL, &model)) != LORA_OK)
        rc = fail("lora_model_load", st);
    else if ((st = lora_session_create(model, NULL, &session)) != LORA_OK)
        rc = fail("lora_session_create", st);
    else if ((st = lora_sampler_create("{\"do_sample\": false, \"max_new_tokens\": 16}",
                                       &sampler)) != LORA_OK)
        rc = fail("lora_sampler_create", st);
    else if ((st = lora_generate(session, sampler, prompt, 5, out, 16, &n_out, NULL, NULL)) !=
             LORA_OK)
        rc = fail("lora_generate", st);
    else {
        for (size_t i = 0; i < n_out; i++) printf("%s%d", i ? " " : "", (int)out[i]);
        printf("\n");
    }
    /* Free in any order; NULL handles are no-ops. */
    lora_sampler_free(sampler);
    lora_session_free(session);
    lora_model_free(model);
    return rc;
}
