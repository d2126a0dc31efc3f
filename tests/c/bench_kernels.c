/*
 * Throughput benchmark for src/turbows/_kernels (not run by the test suite).
 *
 *   cc -O2 -Isrc/turbows/_kernels tests/c/bench_kernels.c \
 *      src/turbows/_kernels/turbows_kernels.c -o bench_kernels && ./bench_kernels
 *
 * Prints GB/s (1e9 bytes per second, best of several runs) for every ISA the
 * CPU supports.  "mixed" text: code points drawn uniformly from ASCII,
 * Latin-1/Latin Extended (2 B), Cyrillic (2 B), CJK (3 B) and emoji (4 B).
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "turbows_kernels.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rs = 88172645463325252ULL;
static uint32_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)(rs >> 16);
}

static size_t encode(uint32_t cp, uint8_t *o)
{
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* fills exactly n bytes of valid mixed text */
static void gen_mixed(uint8_t *o, size_t n)
{
    size_t i = 0;
    while (i + 4 <= n) {
        uint32_t cp;
        switch (rnd() % 5) {
        case 0: cp = (rnd() % 8 == 0) ? ' ' : 'a' + rnd() % 26; break;
        case 1: cp = 0xC0 + rnd() % 0xC0; break;      /* Latin-1 / Ext-A */
        case 2: cp = 0x410 + rnd() % 0x40; break;     /* Cyrillic */
        case 3: cp = 0x4E00 + rnd() % 0x5000; break;  /* CJK */
        default: cp = 0x1F600 + rnd() % 0x50; break;  /* emoji */
        }
        i += encode(cp, o + i);
    }
    while (i < n)
        o[i++] = 'z';
}

static volatile int sink;

/* seconds per call, best of 7 runs of >= ~20 ms */
static double time_mask(uint8_t *dst, const uint8_t *src, size_t len)
{
    static const uint8_t m[4] = {0x12, 0x34, 0x56, 0x78};
    double best = 1e9;
    size_t iters = 1, r, k;
    for (;;) {
        double t0 = now();
        for (k = 0; k < iters; k++)
            turbows_mask(dst, src, len, m);
        if (now() - t0 > 0.02)
            break;
        iters *= 2;
    }
    for (r = 0; r < 7; r++) {
        double t0 = now(), t;
        for (k = 0; k < iters; k++)
            turbows_mask(dst, src, len, m);
        t = (now() - t0) / (double)iters;
        if (t < best)
            best = t;
    }
    sink += dst[len / 2];
    return best;
}

static double time_utf8(const uint8_t *s, size_t len)
{
    double best = 1e9;
    size_t iters = 1, r, k;
    int acc = 0;
    for (;;) {
        double t0 = now();
        for (k = 0; k < iters; k++)
            acc += turbows_utf8_valid(s, len);
        if (now() - t0 > 0.02)
            break;
        iters *= 2;
    }
    for (r = 0; r < 7; r++) {
        double t0 = now(), t;
        for (k = 0; k < iters; k++)
            acc += turbows_utf8_valid(s, len);
        t = (now() - t0) / (double)iters;
        if (t < best)
            best = t;
    }
    sink += acc;
    return best;
}

static double time_feed(const uint8_t *s, size_t len, size_t piece)
{
    double best = 1e9;
    size_t r;
    for (r = 0; r < 15; r++) {
        turbows_utf8_state st;
        size_t off, k;
        int ok = 1;
        double t0 = now(), t;
        for (k = 0; k < 64; k++) {
            turbows_utf8_init(&st);
            for (off = 0; off < len; off += piece)
                ok &= turbows_utf8_feed(&st, s + off,
                                       len - off < piece ? len - off : piece);
        }
        t = (now() - t0) / 64.0;
        sink += ok;
        if (t < best)
            best = t;
    }
    return best;
}

/* masking mixed with unrelated scalar work, as in a real program: shows
 * whether a frequency drop caused by wide vectors slows the scalar code */
static double time_interleaved(uint8_t *dst, const uint8_t *src, int do_mask)
{
    static const uint8_t m[4] = {1, 2, 3, 4};
    double best = 1e9;
    size_t r, k;
    for (r = 0; r < 7; r++) {
        uint64_t x = 12345;
        double t0 = now(), t;
        for (k = 0; k < 2000; k++) {
            int j;
            if (do_mask)
                turbows_mask(dst, src, 16384, m);
            for (j = 0; j < 3000; j++) /* dependent scalar chain */
                x = x * 6364136223846793005ULL + (x >> 29) + (uint64_t)j;
        }
        t = (now() - t0) / 2000.0;
        sink += (int)x;
        if (t < best)
            best = t;
    }
    return best;
}

int main(void)
{
    static const char *const isas[] = {"portable", "sse2", "avx2",
                                       "avx512bw", "neon"};
    static const size_t msz[] = {16, 125, 1024, 16384, 1u << 20};
    static const size_t usz[] = {16, 32, 64, 125, 1024, 65536};
    const size_t big = (1u << 20) + 64;
    uint8_t *src = (uint8_t *)malloc(big), *dst = (uint8_t *)malloc(big);
    uint8_t *ascii = (uint8_t *)malloc(65536), *mixed = (uint8_t *)malloc(65536);
    size_t i, j;
    if (!src || !dst || !ascii || !mixed)
        return 2;
    for (i = 0; i < big; i++)
        src[i] = (uint8_t)rnd();
    memset(dst, 0, big);
    for (i = 0; i < 65536; i++)
        ascii[i] = (uint8_t)(' ' + rnd() % 95);
    gen_mixed(mixed, 65536);

    turbows_kernels_init();
    printf("default ISA: %s\n\n", turbows_kernels_isa());
    for (i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        if (turbows_kernels_force(isas[i]) != 0)
            continue;
        printf("== %s ==\n", isas[i]);
        printf("  mask (out of place)   ");
        for (j = 0; j < sizeof msz / sizeof msz[0]; j++)
            printf(" %7zuB %6.2f", msz[j],
                   (double)msz[j] / time_mask(dst, src, msz[j]) * 1e-9);
        printf("\n  mask (in place)       ");
        for (j = 0; j < sizeof msz / sizeof msz[0]; j++)
            printf(" %7zuB %6.2f", msz[j],
                   (double)msz[j] / time_mask(dst, dst, msz[j]) * 1e-9);
        printf("\n  utf8_valid ASCII      ");
        for (j = 0; j < sizeof usz / sizeof usz[0]; j++)
            printf(" %7zuB %6.2f", usz[j],
                   (double)usz[j] / time_utf8(ascii, usz[j]) * 1e-9);
        printf("\n  utf8_valid mixed      ");
        for (j = 0; j < sizeof usz / sizeof usz[0]; j++) {
            /* prefix cut on a character boundary */
            size_t n = usz[j];
            while (n > 0 && (mixed[n] & 0xC0) == 0x80)
                n--;
            printf(" %7zuB %6.2f", usz[j],
                   (double)n / time_utf8(mixed, n) * 1e-9);
        }
        printf("\n  utf8_feed mixed 64KiB in 4KiB pieces: %6.2f\n",
               65536.0 / time_feed(mixed, 65536, 4096) * 1e-9);
        printf("  interleaved: mask 16KiB + scalar work: %.2f us/iter "
               "(scalar work alone %.2f us)\n",
               time_interleaved(dst, src, 1) * 1e6,
               time_interleaved(dst, src, 0) * 1e6);
        fflush(stdout);
    }
    printf("(GB/s = 1e9 bytes/s)\n");
    free(src);
    free(dst);
    free(ascii);
    free(mixed);
    return 0;
}
