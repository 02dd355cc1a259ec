// Release stage in C: the sha256 of every input artifact, checked against the digest the host
// recorded when it was produced, published as `digests.txt` (BSD style: `SHA256 (name) = hex`).
// Fails when an input changed on the way or when there is nothing to digest.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "stage.h"

// A NUL-terminated copy of a WIT string.
static char *cstr(const stage_string_t *s) {
    char *out = malloc(s->len + 1);
    if (out == NULL) abort();
    memcpy(out, s->ptr, s->len);
    out[s->len] = 0;
    return out;
}

static void say(sluice_pipeline_log_level_t level, const char *text) {
    stage_string_t message;
    stage_string_set(&message, text);
    sluice_pipeline_log_log(level, &message);
}

static bool fail(stage_failure_t *err, const char *text) {
    stage_string_dup(&err->message, text);
    return false;
}

void exports_stage_describe(stage_plugin_info_t *ret) {
    stage_string_dup(&ret->name, "digest");
    stage_string_dup(&ret->version, "0.1.0");
    ret->phase = SLUICE_PIPELINE_TYPES_PHASE_RELEASE;
    stage_string_dup(&ret->description,
                     "sha256 of every input, checked against the recorded digest (C)");
}

// The file's sha256 as hex into `hex`; false when it cannot be read.
static bool digest_file(const char *path, char hex[65]) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) return false;
    sha256_ctx ctx;
    sha256_init(&ctx);
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, file)) > 0) sha256_update(&ctx, buf, n);
    bool ok = !ferror(file);
    fclose(file);
    sha256_hex(&ctx, hex);
    return ok;
}

bool exports_stage_run(stage_stage_context_t *ctx, stage_stage_result_t *ret, stage_failure_t *err) {
    bool ok = true;
    size_t count = ctx->inputs.len;
    if (count == 0) {
        ok = fail(err, "no inputs to digest: give this stage `inputs` from earlier stages");
        goto done;
    }
    char *out_dir = cstr(&ctx->output_dir);
    char report_path[4096];
    snprintf(report_path, sizeof report_path, "%s/digests.txt", out_dir);
    free(out_dir);
    FILE *report = fopen(report_path, "w");
    if (report == NULL) {
        ok = fail(err, "cannot write digests.txt in the output directory");
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        sluice_pipeline_types_artifact_t *a = &ctx->inputs.ptr[i];
        char *path = cstr(&a->path), *stage = cstr(&a->stage), *name = cstr(&a->name);
        char *recorded = cstr(&a->sha256);
        char hex[65], line[4600];
        if (!digest_file(path, hex)) {
            snprintf(line, sizeof line, "cannot read input %s", path);
            ok = fail(err, line);
        } else if (strcmp(hex, recorded) != 0) {
            snprintf(line, sizeof line, "%s/%s changed after it was produced: recorded %s, found %s",
                     stage, name, recorded, hex);
            ok = fail(err, line);
        } else {
            fprintf(report, "SHA256 (%s/%s) = %s\n", stage, name, hex);
            snprintf(line, sizeof line, "%s/%s %s", stage, name, hex);
            say(SLUICE_PIPELINE_LOG_LEVEL_DEBUG, line);
        }
        free(path); free(stage); free(name); free(recorded);
        if (!ok) break;
    }
    fclose(report);
    if (!ok) goto done;

    ret->outputs.len = 1;
    ret->outputs.ptr = calloc(1, sizeof(sluice_pipeline_types_output_t));
    if (ret->outputs.ptr == NULL) abort();
    stage_string_dup(&ret->outputs.ptr[0].name, "digests.txt");
    stage_string_dup(&ret->outputs.ptr[0].media_type, "text/plain");
    char summary[128];
    snprintf(summary, sizeof summary, "%zu digests verified", count);
    ret->summary.is_some = true;
    stage_string_dup(&ret->summary.val, summary);
    say(SLUICE_PIPELINE_LOG_LEVEL_INFO, summary);

done:
    stage_stage_context_free(ctx);
    return ok;
}
