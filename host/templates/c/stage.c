// {{name}}: a sluice stage in C. Writes greeting.txt into the output directory.
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

bool exports_stage_run(stage_stage_context_t *ctx, stage_stage_result_t *ret, stage_failure_t *err) {
    char path[4096];
    snprintf(path, sizeof path, "%.*s/greeting.txt", (int)ctx->output_dir.len, (const char *)ctx->output_dir.ptr);
    FILE *file = fopen(path, "w");
    bool ok = file != NULL;
    if (ok) {
        fprintf(file, "hello from %.*s\n", (int)ctx->stage.len, (const char *)ctx->stage.ptr);
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
