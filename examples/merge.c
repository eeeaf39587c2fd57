/* merge -- fold a PEFT adapter into its base model and save the result as a plain Hugging Face
 * checkpoint, checking on a probe that the merged model computes what the adapter did.
 *
 *   cc merge.c $(pkg-config --cflags --libs lora) -o merge
 *   ./merge MODEL_DIR ADAPTER_DIR OUT_DIR
 */
#include <stdio.h>

#include <lora.h>

static int fail(const char *what, lora_status st)
{
    fprintf(stderr, "%s: %s: %s\n", what, lora_status_string(st), lora_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL_DIR ADAPTER_DIR OUT_DIR\n", argv[0]);
        return 2;
    }
    lora_model *model = NULL;
    lora_adapter *adapter = NULL;
    const int32_t probe[] = {1, 2, 3, 4, 5, 6, 7, 8};
    float change = 0;
    int rc = 0;
    lora_status st;

    if ((st = lora_model_load(argv[1], NULL, &model)) != LORA_OK)
        rc = fail("lora_model_load", st);
    else if ((st = lora_adapter_load(model, argv[2], &adapter)) != LORA_OK)
        rc = fail("lora_adapter_load", st);
    /* W += scale * (alpha / r) * B A for every adapted projection; the probe compares the
     * merged model with the unmerged one carrying the adapter. */
    else if ((st = lora_model_merge(model, adapter, 1.0f, probe, 8, &change)) != LORA_OK)
        rc = fail("lora_model_merge", st);
    else if ((st = lora_model_save(model, argv[3], "f32")) != LORA_OK)
        rc = fail("lora_model_save", st);
    else
        printf("merged %s into %s, saved %s; largest logit change on the probe: %.3g\n",
               argv[2], argv[1], argv[3], (double)change);
    /* lora_model_unmerge(model) would restore the base weights bit for bit. */
    lora_adapter_free(adapter);
    lora_model_free(model);
    return rc;
}
