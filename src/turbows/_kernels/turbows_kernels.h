/*
 * turbows_kernels.h - hot byte kernels for turbows (WebSocket masking and
 * UTF-8 validation), with run-time selection of the instruction set.
 *
 * Implementations: x86-64 (SSE2/SSSE3 baseline tier, AVX2, AVX-512BW),
 * aarch64 (NEON), and portable C for everything else.
 */
#ifndef TURBOWS_KERNELS_H
#define TURBOWS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Pick implementations by CPU features. Idempotent, cheap to call again. */
void turbows_kernels_init(void);

/* Name of the instruction set picked for masking/UTF-8:
 * "avx512bw", "avx2", "sse2", "neon" or "portable". */
const char *turbows_kernels_isa(void);

/* Force a given ISA ("portable", "sse2", "avx2", "avx512bw", "neon") if the
 * CPU supports it; returns 0 on success, -1 if unsupported. */
int turbows_kernels_force(const char *isa);

/* dst[i] = src[i] ^ mask[i % 4] for i in [0, len).  dst may equal src (in
 * place); otherwise they must not overlap. */
void turbows_mask(uint8_t *dst, const uint8_t *src, size_t len,
                 const uint8_t mask[4]);

/* 1 if no byte of buf[0..len) has its high bit set (pure ASCII), else 0. */
int turbows_is_ascii(const uint8_t *buf, size_t len);

/* turbows_mask(dst, src, len, mask), then 1 if the result dst[0..len) is
 * pure ASCII, else 0.  Works block by block, so that the check reads what
 * was just written from the L1 cache. */
int turbows_mask_ascii(uint8_t *dst, const uint8_t *src, size_t len,
                      const uint8_t mask[4]);

/* 1 if buf[0..len) is entirely valid UTF-8 (RFC 3629), else 0. */
int turbows_utf8_valid(const uint8_t *buf, size_t len);

/* Incremental validator for a message that arrives in pieces. */
typedef struct {
    uint8_t pending[4];  /* incomplete trailing sequence carried over */
    uint8_t npending;    /* number of bytes in pending (0..3) */
} turbows_utf8_state;

void turbows_utf8_init(turbows_utf8_state *st);

/* Feed the next piece.  Returns 1 while everything fed so far is a valid
 * UTF-8 prefix, 0 as soon as it cannot be extended into valid UTF-8 (fails
 * fast: a piece ending in "\xED\xA0", "\xF4\x90", "\xE0\x80" or "\xF5"
 * returns 0 immediately).  After a 0 the state is undefined. */
int turbows_utf8_feed(turbows_utf8_state *st, const uint8_t *buf, size_t len);

/* 1 if no incomplete sequence is pending (the message may end here). */
int turbows_utf8_complete(const turbows_utf8_state *st);

#ifdef __cplusplus
}
#endif

#endif /* TURBOWS_KERNELS_H */
