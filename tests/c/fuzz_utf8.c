/*
 * libFuzzer harness: the SIMD UTF-8 validators (every ISA the CPU has) and
 * the incremental validator with split points taken from the input, against
 * a simple code-point based reference.
 *
 *   clang -O1 -g -fsanitize=fuzzer,address,undefined -Isrc/turbows/_kernels \
 *       tests/c/fuzz_utf8.c src/turbows/_kernels/turbows_kernels.c -o fuzz_utf8
 *   ./fuzz_utf8 -max_len=600 -max_total_time=120
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "turbows_kernels.h"

/* 1 if s[0..n) is valid UTF-8 (complete=1) or a valid prefix (complete=0) */
static int ref(const uint8_t *s, size_t n, int complete)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i], lo, hi, minv;
        size_t need, k, have;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC0 && c <= 0xDF) { need = 2; c &= 0x1F; minv = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 3; c &= 0x0F; minv = 0x800; }
        else if (c >= 0xF0 && c <= 0xF7) { need = 4; c &= 0x07; minv = 0x10000; }
        else return 0;
        have = n - i < need ? n - i : need;
        for (k = 1; k < have; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            c = (c << 6) | (s[i + k] & 0x3F);
        }
        lo = hi = c;
        for (k = have; k < need; k++) { lo <<= 6; hi = (hi << 6) | 0x3F; }
        if (hi < minv || lo > 0x10FFFF || (lo >= 0xD800 && hi <= 0xDFFF))
            return 0;
        if (have < need) return !complete;
        /* complete: exact value, check the holes */
        if (c < minv || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
        i += need;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const isas[] = {"portable", "sse2", "avx2", "avx512bw",
                                       "neon"};
    size_t nsplit, k, j;
    size_t cuts[9];
    uint8_t *buf;
    int want;
    if (size < 1)
        return 0;
    /* first byte: number of split points and their seeds */
    nsplit = data[0] % 8;
    data++;
    size--;
    buf = (uint8_t *)malloc(size ? size : 1); /* exact size for ASan */
    memcpy(buf, data, size);
    want = ref(buf, size, 1);
    for (k = 0; k < nsplit; k++)
        cuts[k] = size ? (size_t)(((uint32_t)data[(k * 7) % size] * 2654435761u) >> 8) % (size + 1) : 0;
    cuts[nsplit] = size;
    for (k = 1; k <= nsplit; k++) { /* sort */
        size_t v = cuts[k];
        j = k;
        while (j > 0 && cuts[j - 1] > v) { cuts[j] = cuts[j - 1]; j--; }
        cuts[j] = v;
    }
    for (j = 0; j < sizeof isas / sizeof isas[0]; j++) {
        turbows_utf8_state st;
        size_t pos = 0;
        int alive = 1;
        if (turbows_kernels_force(isas[j]) != 0)
            continue;
        if (turbows_utf8_valid(buf, size) != want)
            abort();
        turbows_utf8_init(&st);
        for (k = 0; k <= nsplit && alive; k++) {
            size_t len = cuts[k] - pos;
            uint8_t *piece = (uint8_t *)malloc(len ? len : 1);
            memcpy(piece, buf + pos, len);
            alive = turbows_utf8_feed(&st, piece, len);
            free(piece);
            if (alive != ref(buf, cuts[k], 0))
                abort();
            pos = cuts[k];
        }
        if (alive && turbows_utf8_complete(&st) != want)
            abort();
    }
    free(buf);
    return 0;
}
