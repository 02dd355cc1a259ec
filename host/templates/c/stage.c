// {{name}}: a sluice stage in C. Reads `greeting` from [stage.config], writes greeting.txt into
// the output directory.
// Return true with `ret` filled for ok; false with `err` filled for err.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stage.h"

void exports_stage_describe(stage_plugin_info_t *ret) {
    stage_string_dup(&ret->name, "{{name}}");
    stage_string_dup(&ret->version, "0.1.0");
    ret->phase = SLUICE_PIPELINE_TYPES_PHASE_BUILD;
    stage_string_dup(&ret->description, "Writes a greeting (edit me)");
}

// The string value of `"key"` in the config's JSON object, unescaped into `out` (at most
// `size - 1` bytes); `fallback` when absent. Enough for a flat table of strings: a plugin with
// richer config links a JSON parser (cJSON, say) instead.
static void config_string(const stage_string_t *json, const char *key, const char *fallback, char *out, size_t size) {
    const char *text = (const char *)json->ptr;
    size_t len = json->len, key_len = strlen(key), n = 0;
    snprintf(out, size, "%s", fallback);
    for (size_t i = 0; i + key_len + 2 <= len; i++) {
        if (text[i] != '"' || memcmp(text + i + 1, key, key_len) != 0 || text[i + key_len + 1] != '"') continue;
        size_t at = i + key_len + 2;
        while (at < len && (text[at] == ' ' || text[at] == ':')) at++;
        if (at >= len || text[at] != '"') return;
        for (at++; at < len && text[at] != '"' && n + 1 < size; at++) {
            if (text[at] == '\\' && at + 1 < len) at++;
            out[n++] = text[at];
        }
        out[n] = '\0';
        return;
    }
}

bool exports_stage_run(stage_stage_context_t *ctx, stage_stage_result_t *ret, stage_failure_t *err) {
    char greeting[256];
    config_string(&ctx->config, "greeting", "hello", greeting, sizeof greeting);
    char path[4096];
    snprintf(path, sizeof path, "%.*s/greeting.txt", (int)ctx->output_dir.len, (const char *)ctx->output_dir.ptr);
    FILE *file = fopen(path, "w");
    bool ok = file != NULL;
    if (ok) {
        fprintf(file, "%s from %.*s\n", greeting, (int)ctx->stage.len, (const char *)ctx->stage.ptr);
        fclose(file);
        ret->outputs.len = 1;
        ret->outputs.ptr = calloc(1, sizeof(sluice_pipeline_types_output_t));
        stage_string_dup(&ret->outputs.ptr[0].name, "greeting.txt");
        stage_string_dup(&ret->outputs.ptr[0].media_type, "text/plain");
        ret->summary.is_some = true;
        stage_string_dup(&ret->summary.val, "hello from C");
    } else {
        stage_string_dup(&err->message, "cannot write greeting.txt");
    }
    stage_stage_context_free(ctx);
    return ok;
}
