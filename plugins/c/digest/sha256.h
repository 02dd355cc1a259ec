// SHA-256 for the digest stage.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t fill;
} sha256_ctx;

void sha256_init(sha256_ctx *ctx);
void sha256_update(sha256_ctx *ctx, const uint8_t *data, size_t n);
// Finishes the digest and writes 64 lower-case hex digits and a NUL.
void sha256_hex(sha256_ctx *ctx, char out[65]);
