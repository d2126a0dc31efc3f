/*
 * Standalone test of src/turbows/_kernels: every kernel the CPU supports is
 * compared against a simple reference (byte-loop masking, code-point based
 * UTF-8 decoding).
 *
 *   cc -O2 -Isrc/turbows/_kernels tests/c/test_kernels.c \
 *      src/turbows/_kernels/turbows_kernels.c -o test_kernels && ./test_kernels
 *
 * Optional argv[1]: random seed.  Exit status 0 iff every check passed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turbows_kernels.h"

static unsigned long long n_pass, n_fail;
static const char *cur_isa = "?";

/* ---- random numbers (xorshift64*) ---- */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}
static size_t rndn(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

/* ---- reference UTF-8 validator: decode code points, check ranges ---- */

/* Decodes the sequence at s[0..avail).  Returns its length (>0) if it is a
 * complete valid sequence, 0 if it is invalid, and -k if it is a valid but
 * unfinished prefix of k bytes that runs into the end of the data (k <
 * needed).  A prefix is "valid" if at least one completion is a valid
 * scalar value. */
static int ref_seq(const uint8_t *s, size_t avail)
{
    uint32_t c = s[0], lo, hi, minv;
    size_t need, k, have;
    if (c < 0x80)
        return 1;
    if (c >= 0xC0 && c <= 0xDF) {
        need = 2;
        c &= 0x1F;
        minv = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        c &= 0x0F;
        minv = 0x800;
    } else if (c >= 0xF0 && c <= 0xF7) {
        need = 4;
        c &= 0x07;
        minv = 0x10000;
    } else {
        return 0; /* continuation byte or F8..FF */
    }
    have = avail < need ? avail : need;
    for (k = 1; k < have; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[k] & 0x3F);
    }
    /* range of code points still reachable by the missing bytes */
    lo = c;
    hi = c;
    for (k = have; k < need; k++) {
        lo = lo << 6;
        hi = (hi << 6) | 0x3F;
    }
    /* does [lo, hi] meet [minv, 0xD7FF] or [0xE000, 0x10FFFF]? */
    {
        int ok = 0;
        uint32_t a = lo > minv ? lo : minv;
        uint32_t b = hi < 0xD7FF ? hi : 0xD7FF;
        if (a <= b)
            ok = 1;
        a = lo > 0xE000 ? lo : 0xE000;
        a = a > minv ? a : minv;
        b = hi < 0x10FFFF ? hi : 0x10FFFF;
        if (a <= b)
            ok = 1;
        if (!ok)
            return 0;
    }
    return have == need ? (int)need : -(int)have;
}

/* 1 if s[0..n) is valid UTF-8 */
static int ref_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        int r = ref_seq(s + i, n - i);
        if (r <= 0)
            return 0;
        i += (size_t)r;
    }
    return 1;
}

/* 1 if s[0..n) can be extended into valid UTF-8 */
static int ref_prefix(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        int r = ref_seq(s + i, n - i);
        if (r == 0)
            return 0;
        if (r < 0)
            return 1; /* open sequence at the very end */
        i += (size_t)r;
    }
    return 1;
}

/* ---- test data arena: data is placed at the very END of a heap block so
 *      that any over-read is caught by ASan / valgrind ---- */
#define ARENA (4u << 20)
static uint8_t *arena;

static void report(const char *what, const uint8_t *s, size_t n, int got,
                   int want)
{
    size_t i;
    n_fail++;
    if (n_fail > 30)
        return;
    fprintf(stderr, "FAIL [%s] %s len=%zu got=%d want=%d:", cur_isa, what, n,
            got, want);
    for (i = 0; i < n && i < 80; i++)
        fprintf(stderr, " %02X", s[i]);
    fprintf(stderr, "%s\n", n > 80 ? " ..." : "");
}

/* Feeds s[0..n) in pieces split at random points, checking every step. */
static void check_feed(const uint8_t *s, size_t n, int nsplits)
{
    turbows_utf8_state st;
    size_t cuts[16], ncut = 0, k, pos = 0;
    int alive = 1;
    if (nsplits > 14)
        nsplits = 14;
    for (k = 0; k < (size_t)nsplits; k++)
        cuts[ncut++] = rndn(n + 1);
    cuts[ncut++] = n;
    /* sort the cut points */
    for (k = 1; k < ncut; k++) {
        size_t v = cuts[k], j = k;
        while (j > 0 && cuts[j - 1] > v) {
            cuts[j] = cuts[j - 1];
            j--;
        }
        cuts[j] = v;
    }
    turbows_utf8_init(&st);
    for (k = 0; k < ncut && alive; k++) {
        size_t end = cuts[k], len = end - pos;
        /* each piece at the end of the arena too */
        uint8_t *piece = arena + ARENA - len;
        int got, want;
        memmove(piece, s + pos, len);
        got = turbows_utf8_feed(&st, piece, len);
        want = ref_prefix(s, end);
        if (got != want) {
            report("feed", s, end, got, want);
            return;
        }
        alive = got;
        pos = end;
    }
    if (alive) {
        int got = turbows_utf8_complete(&st), want = ref_valid(s, n);
        if (got != want) {
            report("feed-complete", s, n, got, want);
            return;
        }
    }
    n_pass++;
}

/* s must not live in the arena tail */
static void check_utf8(const uint8_t *s, size_t n, int feed)
{
    uint8_t *p = arena + ARENA - n;
    int got, want;
    memcpy(p, s, n);
    got = turbows_utf8_valid(p, n);
    want = ref_valid(s, n);
    if (got != want)
        report("valid", s, n, got, want);
    else
        n_pass++;
    if (feed)
        check_feed(s, n, 1 + (int)rndn(4));
}

/* ---- random valid UTF-8 ---- */
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

static uint32_t rnd_cp(void)
{
    for (;;) {
        uint32_t cp;
        switch (rndn(6)) {
        case 0: case 1: cp = (uint32_t)rndn(0x80); break;
        case 2: cp = 0x80 + (uint32_t)rndn(0x780); break;
        case 3: cp = 0x800 + (uint32_t)rndn(0xF800); break;
        case 4: cp = 0x10000 + (uint32_t)rndn(0x100000); break;
        default: {
            /* boundary values */
            static const uint32_t b[] = {0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFF,
                                         0x1000, 0xD7FF, 0xE000, 0xFFFD,
                                         0xFFFF, 0x10000, 0x3FFFF, 0x40000,
                                         0xFFFFF, 0x100000, 0x10FFFF};
            cp = b[rndn(sizeof b / sizeof b[0])];
        }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        return cp;
    }
}

static size_t rnd_utf8(uint8_t *o, size_t target)
{
    size_t n = 0;
    while (n + 4 <= target) {
        n += encode(rnd_cp(), o + n);
        if (rndn(8) == 0) {
            /* ASCII runs, so that ASCII fast paths are entered and left */
            size_t r = rndn(80);
            while (r-- && n < target)
                o[n++] = (uint8_t)('a' + rndn(26));
        }
    }
    while (n < target)
        o[n++] = (uint8_t)('A' + rndn(26));
    return n;
}

static const uint8_t interesting[] = {
    0x00, 0x41, 0x7F, 0x80, 0x81, 0x8F, 0x90, 0x9F, 0xA0, 0xAF, 0xBF,
    0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0,
    0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xF8, 0xFF};
#define NINT (sizeof interesting / sizeof interesting[0])

/* checks seq (1..4 bytes) alone and embedded in ASCII / valid text at
 * offsets around SIMD block boundaries, optionally truncated at the end */
static void check_embedded(const uint8_t *seq, size_t slen, int heavy)
{
    static const size_t offs[] = {0, 1, 13, 14, 15, 16, 30, 31, 32, 33,
                                  61, 62, 63, 64, 65, 125, 126, 127, 128};
    uint8_t buf[300];
    size_t oi, nof = heavy ? sizeof offs / sizeof offs[0] : 4;
    check_utf8(seq, slen, 0);
    for (oi = 0; oi < nof; oi++) {
        size_t off = heavy ? offs[oi] : offs[rndn(sizeof offs / sizeof offs[0])];
        size_t after = rndn(3) == 0 ? 0 : rndn(70), n;
        memset(buf, 'x', off);
        memcpy(buf + off, seq, slen);
        n = off + slen;
        memset(buf + n, 'y', after);
        n += after;
        check_utf8(buf, n, 0);
    }
}

static void test_utf8(void)
{
    static uint8_t buf[70000], b2[70000];
    size_t i, j, n, t;
    uint32_t cp;

    /* all 1- and 2-byte inputs, alone and embedded */
    for (i = 0; i < 256; i++) {
        uint8_t s[1] = {(uint8_t)i};
        check_embedded(s, 1, 1);
    }
    for (i = 0; i < 65536; i++) {
        uint8_t s[2] = {(uint8_t)(i >> 8), (uint8_t)i};
        check_embedded(s, 2, 0);
    }
    /* every code point, encoded, plus all its truncations */
    for (cp = 0; cp <= 0x10FFFF; cp += (cp < 0x800 ? 1 : 7)) {
        uint8_t s[4];
        size_t l = encode(cp, s);
        for (j = 1; j <= l; j++)
            check_embedded(s, j, 0);
    }
    /* surrogates, code points above U+10FFFF and overlong forms (encoded
     * by hand with the generic bit layout) */
    for (cp = 0xD800; cp <= 0xDFFF; cp += 3) {
        uint8_t s[3] = {(uint8_t)(0xE0 | (cp >> 12)),
                        (uint8_t)(0x80 | ((cp >> 6) & 0x3F)),
                        (uint8_t)(0x80 | (cp & 0x3F))};
        check_embedded(s, 3, 0);
        check_embedded(s, 2, 0);
    }
    for (cp = 0x110000; cp < 0x200000; cp += 0x301) {
        uint8_t s[4] = {(uint8_t)(0xF0 | (cp >> 18)),
                        (uint8_t)(0x80 | ((cp >> 12) & 0x3F)),
                        (uint8_t)(0x80 | ((cp >> 6) & 0x3F)),
                        (uint8_t)(0x80 | (cp & 0x3F))};
        for (j = 1; j <= 4; j++)
            check_embedded(s, j, 0);
    }
    for (cp = 0; cp < 0x10000; cp += (cp < 0x800 ? 1 : 13)) {
        uint8_t s2[2] = {(uint8_t)(0xC0 | ((cp >> 6) & 0x1F)),
                         (uint8_t)(0x80 | (cp & 0x3F))};
        uint8_t s3[3] = {(uint8_t)(0xE0 | ((cp >> 12) & 0x0F)),
                         (uint8_t)(0x80 | ((cp >> 6) & 0x3F)),
                         (uint8_t)(0x80 | (cp & 0x3F))};
        uint8_t s4[4] = {0xF0, (uint8_t)(0x80 | ((cp >> 12) & 0x3F)),
                         (uint8_t)(0x80 | ((cp >> 6) & 0x3F)),
                         (uint8_t)(0x80 | (cp & 0x3F))};
        if (cp < 0x80)
            check_embedded(s2, 2, 0);
        if (cp < 0x800)
            check_embedded(s3, 3, 0);
        check_embedded(s4, 4, 0);
    }
    /* 3- and 4-byte inputs over the set of boundary bytes, exhaustively */
    for (i = 0; i < NINT; i++)
        for (j = 0; j < NINT; j++)
            for (t = 0; t < NINT; t++) {
                uint8_t s[4] = {interesting[i], interesting[j], interesting[t],
                                0};
                size_t u;
                check_embedded(s, 3, 0);
                for (u = 0; u < NINT; u += 1 + rndn(3)) {
                    s[3] = interesting[u];
                    check_embedded(s, 4, 0);
                }
            }
    /* a large random sample of 3/4-byte inputs, biased to high bytes */
    for (i = 0; i < 300000; i++) {
        uint8_t s[4];
        for (j = 0; j < 4; j++)
            s[j] = (uint8_t)(rndn(4) ? 0x80 + rndn(0x80) : rndn(256));
        check_embedded(s, 3 + rndn(2), 0);
    }
    /* random bytes */
    for (i = 0; i < 20000; i++) {
        n = rndn(300);
        for (j = 0; j < n; j++)
            buf[j] = (uint8_t)(rndn(3) ? rndn(256) : rndn(0x80));
        check_utf8(buf, n, 1);
    }
    /* random valid text, untouched and mutated */
    for (i = 0; i < 20000; i++) {
        size_t m;
        n = rnd_utf8(buf, rndn(4) ? rndn(400) : rndn(5000));
        check_utf8(buf, n, 1);
        memcpy(b2, buf, n);
        m = n;
        switch (rndn(4)) {
        case 0: /* replace a byte */
            if (m)
                b2[rndn(m)] = (uint8_t)rnd();
            break;
        case 1: /* replace with a boundary byte */
            if (m)
                b2[rndn(m)] = interesting[rndn(NINT)];
            break;
        case 2: /* truncate */
            m = rndn(n + 1);
            break;
        default: /* delete a byte */
            if (m) {
                j = rndn(m);
                memmove(b2 + j, b2 + j + 1, m - j - 1);
                m--;
            }
        }
        check_utf8(b2, m, 1);
    }
    /* an invalid byte at every position of 64..200 byte buffers, and
     * truncation at every position */
    for (n = 64; n <= 200; n += 1 + rndn(3)) {
        static const uint8_t bad[] = {0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xE0,
                                      0xED, 0xF0, 0xF4, 0xF5, 0xFF};
        size_t len = rnd_utf8(buf, n);
        for (j = 0; j < len; j++) {
            size_t b;
            for (b = 0; b < sizeof bad; b++) {
                memcpy(b2, buf, len);
                b2[j] = bad[b];
                check_utf8(b2, len, b == 0);
            }
            check_utf8(buf, j, 0);
        }
        /* pure ASCII with one bad byte */
        memset(b2, 'q', len);
        for (j = 0; j < len; j++) {
            b2[j] = bad[rndn(sizeof bad)];
            check_utf8(b2, len, 0);
            b2[j] = 'q';
        }
    }
    /* large buffers */
    for (i = 0; i < 6; i++) {
        n = rnd_utf8(buf, 60000 + rndn(9000));
        check_utf8(buf, n, 1);
        buf[rndn(n)] = 0xFF;
        check_utf8(buf, n, 1);
    }
    /* the feed examples from the API contract must fail at once */
    {
        static const char *const fast_fail[] = {"\xED\xA0", "\xF4\x90",
                                                "\xE0\x80", "\xF5", "\xC0",
                                                "\xF0\x80", "\xE0\x9F"};
        for (i = 0; i < sizeof fast_fail / sizeof fast_fail[0]; i++) {
            turbows_utf8_state st;
            const uint8_t *s = (const uint8_t *)fast_fail[i];
            size_t l = strlen(fast_fail[i]);
            int got;
            memcpy(buf, "abc", 3);
            memcpy(buf + 3, s, l);
            turbows_utf8_init(&st);
            got = turbows_utf8_feed(&st, buf, 3 + l);
            if (got != 0)
                report("fast-fail", buf, 3 + l, got, 0);
            else
                n_pass++;
        }
    }
}

/* ---- masking ---- */
static void check_mask(size_t len, size_t soff, size_t doff, int inplace)
{
    uint8_t mask[4];
    uint8_t *src, *dst, *want;
    size_t i;
    for (i = 0; i < 4; i++)
        mask[i] = (uint8_t)rnd();
    /* src at the start of the arena, the expected result in the middle and
     * dst ending exactly at the end of the arena (or doff bytes before it)
     * so that any write past dst + len is caught by ASan */
    dst = arena + ARENA - len - doff;
    src = arena + soff;
    want = arena + ARENA / 4 + 4096;
    for (i = 0; i < len; i++)
        src[i] = (uint8_t)rnd();
    for (i = 0; i < len; i++)
        want[i] = (uint8_t)(src[i] ^ mask[i & 3]);
    if (inplace) {
        memcpy(dst, src, len);
        turbows_mask(dst, dst, len, mask);
    } else {
        uint8_t before = (uint8_t)rnd(), after = (uint8_t)rnd();
        dst[-1] = before;
        if (doff)
            dst[len] = after;
        turbows_mask(dst, src, len, mask);
        if (dst[-1] != before || (doff && dst[len] != after)) {
            n_fail++;
            fprintf(stderr, "FAIL [%s] mask wrote outside dst, len=%zu\n",
                    cur_isa, len);
            return;
        }
    }
    if (memcmp(dst, want, len) != 0) {
        n_fail++;
        if (n_fail <= 30)
            fprintf(stderr,
                    "FAIL [%s] mask len=%zu soff=%zu doff=%zu inplace=%d\n",
                    cur_isa, len, soff, doff, inplace);
        return;
    }
    n_pass++;
}

static void test_mask(void)
{
    size_t len, k;
    for (len = 0; len <= 300; len++)
        for (k = 0; k < 12; k++)
            check_mask(len, rndn(64), k == 0 ? 0 : rndn(64), (int)(k & 1));
    {
        static const size_t big[] = {1000, 4096, 16384 + 5, 65536 + 3,
                                     (1u << 20) + 13};
        for (k = 0; k < sizeof big / sizeof big[0]; k++) {
            check_mask(big[k], rndn(64), rndn(64), 0);
            check_mask(big[k], rndn(64), 0, 1);
        }
    }
}

/* ---- ASCII check, alone and after masking ---- */

/* want[0..len): random ASCII, with a high bit set at `high` (if < len). */
static void ascii_data(uint8_t *want, size_t len, size_t high)
{
    size_t i;
    for (i = 0; i < len; i++)
        want[i] = (uint8_t)(rnd() & 0x7F);
    if (high < len)
        want[high] |= (uint8_t)(0x80 | rnd());
}

static void check_ascii(size_t len, size_t high, size_t doff, int inplace)
{
    uint8_t mask[4];
    uint8_t *src, *dst, *want;
    size_t i;
    int expect = high >= len, got;
    for (i = 0; i < 4; i++)
        mask[i] = (uint8_t)rnd();
    /* as in check_mask: dst ends at (or doff bytes before) the end of the
     * arena, so that a read or write past dst + len is caught by ASan */
    dst = arena + ARENA - len - doff;
    src = arena + rndn(64);
    want = arena + ARENA / 4 + 4096;
    ascii_data(want, len, high);
    memcpy(dst, want, len);
    got = turbows_is_ascii(dst, len);
    if (got != expect) {
        n_fail++;
        if (n_fail <= 30)
            fprintf(stderr, "FAIL [%s] is_ascii len=%zu high=%zu: %d\n",
                    cur_isa, len, high, got);
        return;
    }
    for (i = 0; i < len; i++)
        src[i] = (uint8_t)(want[i] ^ mask[i & 3]);
    if (inplace) {
        memcpy(dst, src, len);
        got = turbows_mask_ascii(dst, dst, len, mask);
    } else {
        memset(dst, 0xAA, len);
        got = turbows_mask_ascii(dst, src, len, mask);
    }
    if (got != expect || memcmp(dst, want, len) != 0) {
        n_fail++;
        if (n_fail <= 30)
            fprintf(stderr,
                    "FAIL [%s] mask_ascii len=%zu high=%zu inplace=%d: %d\n",
                    cur_isa, len, high, inplace, got);
        return;
    }
    n_pass++;
}

static void test_ascii(void)
{
    size_t len, high, k;
    for (len = 0; len <= 300; len++) {
        check_ascii(len, len, rndn(8), (int)(len & 1));
        for (high = 0; high < len; high++)
            check_ascii(len, high, high & 1 ? 0 : rndn(8), (int)(high & 1));
    }
    {
        static const size_t big[] = {1000, 4096, 16384, 16384 + 5, 65536 + 3,
                                     (1u << 20) + 13};
        for (k = 0; k < sizeof big / sizeof big[0]; k++) {
            len = big[k];
            check_ascii(len, len, 0, 0);
            check_ascii(len, len, rndn(64), 1);
            check_ascii(len, 0, 0, 0);
            check_ascii(len, len - 1, 0, 1);
            check_ascii(len, rndn(len), rndn(64), 0);
            check_ascii(len, rndn(len), 0, 1);
        }
    }
}

int main(int argc, char **argv)
{
    static const char *const isas[] = {"portable", "sse2", "avx2",
                                       "avx512bw", "neon"};
    size_t i;
    int tested = 0;
    uint64_t seed = 0x5EED1234ULL;
    if (argc > 1)
        seed = strtoull(argv[1], NULL, 0);
    arena = (uint8_t *)malloc(ARENA);
    if (!arena)
        return 2;
    memset(arena, 0, ARENA);
    turbows_kernels_init();
    printf("default isa: %s\n", turbows_kernels_isa());
    for (i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        unsigned long long p0 = n_pass, f0 = n_fail;
        if (turbows_kernels_force(isas[i]) != 0) {
            printf("%-9s unsupported here, skipped\n", isas[i]);
            continue;
        }
        if (strcmp(turbows_kernels_isa(), isas[i]) != 0) {
            fprintf(stderr, "FAIL force(%s) -> isa() = %s\n", isas[i],
                    turbows_kernels_isa());
            n_fail++;
        }
        cur_isa = isas[i];
        rng_state = seed + i;
        test_mask();
        test_ascii();
        test_utf8();
        tested++;
        printf("%-9s %llu passed, %llu failed\n", isas[i], n_pass - p0,
               n_fail - f0);
        fflush(stdout);
    }
    if (turbows_kernels_force("no-such-isa") != -1) {
        fprintf(stderr, "FAIL force(no-such-isa) != -1\n");
        n_fail++;
    }
    free(arena);
    printf("%d ISAs tested: %llu passed, %llu failed\n", tested, n_pass,
           n_fail);
    return n_fail == 0 && tested > 0 ? 0 : 1;
}
