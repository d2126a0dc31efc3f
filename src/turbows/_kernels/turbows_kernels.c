/*
 * turbows_kernels.c - WebSocket masking and UTF-8 validation kernels.
 *
 * UTF-8 validation follows the published "lookup" approach of Keiser and
 * Lemire (Validating UTF-8 In Less Than One Instruction Per Byte, 2021):
 * for every byte, three 16-entry nibble tables (high nibble of the previous
 * byte, low nibble of the previous byte, high nibble of the current byte)
 * are looked up with a byte shuffle and AND-ed; each bit of the result
 * stands for one class of two-byte error.  Whether a byte has to be the 2nd
 * or 3rd continuation byte of a 3/4-byte sequence is checked separately
 * from the bytes two and three positions back.  Blocks that are pure ASCII
 * skip all of that.
 *
 * The code never reads outside [buf, buf+len): partial blocks are either
 * copied into a zero-padded local block or loaded with AVX-512 masked loads.
 *
 * Build: a plain C99 translation unit, no special compiler flags needed.
 * Per-ISA functions use __attribute__((target(...))) on GCC/Clang and plain
 * intrinsics on MSVC; selection happens at run time (cpuid + xgetbv).
 * Define TURBOWS_KERNELS_PORTABLE_ONLY to build only the portable C code.
 */
#include "turbows_kernels.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* Platform detection                                                       */
/* ------------------------------------------------------------------------ */

#if !defined(TURBOWS_KERNELS_PORTABLE_ONLY)
#  if defined(__x86_64__) || defined(_M_X64) || defined(_M_AMD64)
#    if defined(__clang__)
#      if __clang_major__ >= 4
#        define FWS_X86 1
#      endif
#    elif defined(__GNUC__)
#      if __GNUC__ >= 5
#        define FWS_X86 1
#      endif
#    elif defined(_MSC_VER)
#      if _MSC_VER >= 1910
#        define FWS_X86 1
#      endif
#    endif
#  elif defined(__aarch64__) || defined(_M_ARM64)
#    define FWS_NEON 1
#  endif
#endif

#if defined(FWS_X86)
#  include <immintrin.h>
#  if defined(_MSC_VER) && !defined(__clang__)
#    include <intrin.h>
#    define FWS_TARGET(x)
#  else
#    include <cpuid.h>
#    define FWS_TARGET(x) __attribute__((target(x)))
#  endif
#  define FWS_T_SSSE3 FWS_TARGET("ssse3")
#  define FWS_T_AVX2 FWS_TARGET("avx2")
#  define FWS_T_AVX512 FWS_TARGET("avx512f,avx512bw")
#endif

#if defined(FWS_NEON)
#  include <arm_neon.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define FWS_LIKELY(x) __builtin_expect(!!(x), 1)
#  define FWS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#  define FWS_LIKELY(x) (x)
#  define FWS_UNLIKELY(x) (x)
#endif

/* Below these sizes the public entry points use the scalar code directly
 * (chosen by measurement with tests/c/bench_kernels.c). */
#define FWS_MASK_SCALAR_MAX 16
#define FWS_UTF8_SCALAR_MAX 16
/* turbows_mask_ascii masks and checks this many bytes at a time (a multiple
 * of 64, so that every block starts at the same mask phase and alignment). */
#define FWS_ASCII_BLOCK 16384

/* ------------------------------------------------------------------------ */
/* Portable scalar code                                                     */
/* ------------------------------------------------------------------------ */

static void mask_portable(uint8_t *dst, const uint8_t *src, size_t len,
                          const uint8_t mask[4])
{
    uint8_t m8[8];
    uint64_t w;
    size_t i = 0;
    memcpy(m8, mask, 4);
    memcpy(m8 + 4, mask, 4);
    memcpy(&w, m8, 8);
    for (; i + 8 <= len; i += 8) {
        uint64_t x;
        memcpy(&x, src + i, 8);
        x ^= w;
        memcpy(dst + i, &x, 8);
    }
    for (; i < len; i++)
        dst[i] = (uint8_t)(src[i] ^ mask[i & 3]);
}

#define FWS_HIGH_BITS UINT64_C(0x8080808080808080)

static int ascii_portable(const uint8_t *s, size_t n)
{
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t a, b, c, d;
        memcpy(&a, s + i, 8);
        memcpy(&b, s + i + 8, 8);
        memcpy(&c, s + i + 16, 8);
        memcpy(&d, s + i + 24, 8);
        if ((a | b | c | d) & FWS_HIGH_BITS)
            return 0;
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t a;
        memcpy(&a, s + i, 8);
        acc |= a;
    }
    for (; i < n; i++)
        acc |= s[i];
    return (acc & FWS_HIGH_BITS) == 0;
}

/* Allowed range of the byte following lead byte c (c in C2..F4). */
static inline int second_byte_ok(uint8_t c, uint8_t b)
{
    uint8_t lo = 0x80, hi = 0xBF;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    return b >= lo && b <= hi;
}

static inline int is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

/* Complete-buffer scalar validator, ASCII skipped a word at a time. */
static int utf8_scalar(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & UINT64_C(0x8080808080808080))
                    break;
                i += 8;
            }
            continue;
        }
        if (c < 0xC2)
            return 0;
        if (c < 0xE0) {
            if (i + 1 >= n || !is_cont(s[i + 1]))
                return 0;
            i += 2;
        } else if (c < 0xF0) {
            if (i + 2 >= n || !second_byte_ok(c, s[i + 1]) ||
                !is_cont(s[i + 2]))
                return 0;
            i += 3;
        } else if (c < 0xF5) {
            if (i + 3 >= n || !second_byte_ok(c, s[i + 1]) ||
                !is_cont(s[i + 2]) || !is_cont(s[i + 3]))
                return 0;
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

/* Length of the sequence introduced by lead byte c >= 0xC0. */
static inline size_t lead_len(uint8_t c)
{
    return c < 0xE0 ? 2 : (c < 0xF0 ? 3 : 4);
}

/* 1 if b[0..n) (n >= 1, n <= sequence length, b[0] >= 0xC0) can still be
 * extended to a valid sequence / is a valid sequence. */
static int prefix_ok(const uint8_t *b, size_t n)
{
    size_t k;
    if (b[0] < 0xC2 || b[0] > 0xF4)
        return 0;
    if (n >= 2 && !second_byte_ok(b[0], b[1]))
        return 0;
    for (k = 2; k < n; k++)
        if (!is_cont(b[k]))
            return 0;
    return 1;
}

/* Tail of a masking loop (fewer than 16 bytes left, i % 4 == 0), inlined
 * into each ISA function so that it is compiled with the same encoding. */
#define FWS_MASK_TAIL(dst, src, i, len, mask, m32)                          \
    do {                                                                    \
        uint64_t w64_ = ((uint64_t)(m32) << 32) | (m32);                    \
        if ((i) + 8 <= (len)) {                                             \
            uint64_t x_;                                                    \
            memcpy(&x_, (src) + (i), 8);                                    \
            x_ ^= w64_;                                                     \
            memcpy((dst) + (i), &x_, 8);                                    \
            (i) += 8;                                                       \
        }                                                                   \
        if ((i) + 4 <= (len)) {                                             \
            uint32_t y_;                                                    \
            memcpy(&y_, (src) + (i), 4);                                    \
            y_ ^= (m32);                                                    \
            memcpy((dst) + (i), &y_, 4);                                    \
            (i) += 4;                                                       \
        }                                                                   \
        for (; (i) < (len); (i)++)                                          \
            (dst)[i] = (uint8_t)((src)[i] ^ (mask)[(i) & 3]);               \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Shared tables of the lookup algorithm                                    */
/* ------------------------------------------------------------------------ */

#if defined(FWS_X86) || defined(FWS_NEON)
/* Error classes, one bit each (the result of the three lookups is the AND). */
#define E_SHORT 0x01    /* lead followed by a non-continuation            */
#define E_LONG 0x02     /* ASCII followed by a continuation                */
#define E_OVL3 0x04     /* E0 80..9F                                       */
#define E_BIG 0x08      /* F4 90..BF, F5..FF 90..BF                        */
#define E_SURR 0x10     /* ED A0..BF                                       */
#define E_OVL2 0x20     /* C0/C1 continuation                              */
#define E_BIG80 0x40    /* F5..FF 80..8F                                   */
#define E_OVL4 0x40     /* F0 80..8F (shares the bit with E_BIG80)         */
#define E_2CONT 0x80    /* continuation after continuation: must match the
                           "3rd/4th byte expected" mask, hence XOR         */
#define E_ANY (E_SHORT | E_LONG | E_2CONT)

/* indexed by the high nibble of the previous byte */
static const uint8_t fws_tab_prev_hi[16] = {
    E_LONG, E_LONG, E_LONG, E_LONG, E_LONG, E_LONG, E_LONG, E_LONG,
    E_2CONT, E_2CONT, E_2CONT, E_2CONT,
    E_SHORT | E_OVL2,                       /* C */
    E_SHORT,                                /* D */
    E_SHORT | E_OVL3 | E_SURR,              /* E */
    E_SHORT | E_BIG | E_BIG80 | E_OVL4      /* F */
};
/* indexed by the low nibble of the previous byte */
static const uint8_t fws_tab_prev_lo[16] = {
    E_ANY | E_OVL3 | E_OVL2 | E_OVL4,       /* 0 */
    E_ANY | E_OVL2,                         /* 1 */
    E_ANY, E_ANY,                           /* 2, 3 */
    E_ANY | E_BIG,                          /* 4 */
    E_ANY | E_BIG | E_BIG80, E_ANY | E_BIG | E_BIG80,
    E_ANY | E_BIG | E_BIG80, E_ANY | E_BIG | E_BIG80,
    E_ANY | E_BIG | E_BIG80, E_ANY | E_BIG | E_BIG80,
    E_ANY | E_BIG | E_BIG80, E_ANY | E_BIG | E_BIG80,   /* 5..C */
    E_ANY | E_BIG | E_BIG80 | E_SURR,       /* D */
    E_ANY | E_BIG | E_BIG80, E_ANY | E_BIG | E_BIG80    /* E, F */
};
/* indexed by the high nibble of the current byte */
static const uint8_t fws_tab_cur_hi[16] = {
    E_SHORT, E_SHORT, E_SHORT, E_SHORT, E_SHORT, E_SHORT, E_SHORT, E_SHORT,
    E_LONG | E_OVL2 | E_2CONT | E_OVL3 | E_BIG80 | E_OVL4,   /* 8 */
    E_LONG | E_OVL2 | E_2CONT | E_OVL3 | E_BIG,              /* 9 */
    E_LONG | E_OVL2 | E_2CONT | E_SURR | E_BIG,              /* A */
    E_LONG | E_OVL2 | E_2CONT | E_SURR | E_BIG,              /* B */
    E_SHORT, E_SHORT, E_SHORT, E_SHORT
};
/* Saturating-subtract thresholds flagging a sequence left open at the end
 * of a block (only the last three bytes matter); the last 16/32/64 bytes of
 * this array are used depending on the vector width. */
static const uint8_t fws_incomplete_max[64] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xF0 - 1, 0xE0 - 1, 0xC0 - 1
};
#endif

/* ------------------------------------------------------------------------ */
/* x86-64                                                                   */
/* ------------------------------------------------------------------------ */

#if defined(FWS_X86)

/* For long buffers, mask the bytes before the first 64-byte boundary of dst
 * one by one, then let the caller's vector loop run on aligned stores (a
 * vector store that straddles two cache lines costs a second line write).
 * Advances the pointers and returns the mask rotated to the new start. */
static inline uint32_t fws_align_dst(uint8_t **dst, const uint8_t **src,
                                     size_t *len, const uint8_t *mask)
{
    uint8_t rot[4];
    uint32_t m32;
    size_t head = (size_t)(-(uintptr_t)*dst) & 63, k;
    if (*len < 4096 || head == 0) {
        memcpy(&m32, mask, 4);
        return m32;
    }
    for (k = 0; k < head; k++)
        (*dst)[k] = (uint8_t)((*src)[k] ^ mask[k & 3]);
    for (k = 0; k < 4; k++)
        rot[k] = mask[(head + k) & 3];
    *dst += head;
    *src += head;
    *len -= head;
    memcpy(&m32, rot, 4);
    return m32;
}

/* ---- SSE2 masking ---- */

static void mask_sse2(uint8_t *dst, const uint8_t *src, size_t len,
                      const uint8_t mask[4])
{
    uint32_t m32;
    __m128i mv;
    size_t i = 0;
    memcpy(&m32, mask, 4);
    mv = _mm_set1_epi32((int)m32);
    for (; i + 64 <= len; i += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(src + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(src + i + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(src + i + 48));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, mv));
        _mm_storeu_si128((__m128i *)(dst + i + 16), _mm_xor_si128(b, mv));
        _mm_storeu_si128((__m128i *)(dst + i + 32), _mm_xor_si128(c, mv));
        _mm_storeu_si128((__m128i *)(dst + i + 48), _mm_xor_si128(d, mv));
    }
    for (; i + 16 <= len; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, mv));
    }
    FWS_MASK_TAIL(dst, src, i, len, mask, m32);
}

static int ascii_sse2(const uint8_t *s, size_t n)
{
    size_t i = 0;
    __m128i acc = _mm_setzero_si128();
    for (; i + 64 <= n; i += 64) {
        __m128i a = _mm_or_si128(_mm_loadu_si128((const __m128i *)(s + i)),
                                 _mm_loadu_si128((const __m128i *)(s + i + 16)));
        __m128i b = _mm_or_si128(_mm_loadu_si128((const __m128i *)(s + i + 32)),
                                 _mm_loadu_si128((const __m128i *)(s + i + 48)));
        if (_mm_movemask_epi8(_mm_or_si128(a, b)))
            return 0;
    }
    for (; i + 16 <= n; i += 16)
        acc = _mm_or_si128(acc, _mm_loadu_si128((const __m128i *)(s + i)));
    if (_mm_movemask_epi8(acc))
        return 0;
    return ascii_portable(s + i, n - i);
}

/* ---- SSSE3 UTF-8 (the "sse2" tier; plain scalar if SSSE3 is missing) ---- */

/* Error bits for the 16 bytes `in`, given the vectors of the bytes one, two
 * and three positions earlier. */
FWS_T_SSSE3
static inline __m128i utf8_check_ssse3(__m128i in, __m128i p1, __m128i p2,
                                       __m128i p3, __m128i t1, __m128i t2,
                                       __m128i t3)
{
    const __m128i nib = _mm_set1_epi8(0x0F);
    __m128i a = _mm_shuffle_epi8(t1, _mm_and_si128(_mm_srli_epi16(p1, 4), nib));
    __m128i b = _mm_shuffle_epi8(t2, _mm_and_si128(p1, nib));
    __m128i c = _mm_shuffle_epi8(t3, _mm_and_si128(_mm_srli_epi16(in, 4), nib));
    __m128i sc = _mm_and_si128(_mm_and_si128(a, b), c);
    __m128i must = _mm_or_si128(_mm_subs_epu8(p2, _mm_set1_epi8(0x60)),
                                _mm_subs_epu8(p3, _mm_set1_epi8(0x70)));
    must = _mm_and_si128(must, _mm_set1_epi8((char)0x80));
    return _mm_xor_si128(must, sc);
}

#define SSSE3_BLOCK(in)                                                     \
    do {                                                                    \
        __m128i in_ = (in);                                                 \
        err = _mm_or_si128(err, utf8_check_ssse3(                           \
                                    in_, _mm_alignr_epi8(in_, prev, 15),    \
                                    _mm_alignr_epi8(in_, prev, 14),         \
                                    _mm_alignr_epi8(in_, prev, 13), t1, t2, \
                                    t3));                                   \
        inc = _mm_subs_epu8(in_, maxv);                                     \
        prev = in_;                                                         \
    } while (0)

FWS_T_SSSE3
static int utf8_ssse3(const uint8_t *s, size_t n)
{
    const __m128i t1 = _mm_loadu_si128((const __m128i *)fws_tab_prev_hi);
    const __m128i t2 = _mm_loadu_si128((const __m128i *)fws_tab_prev_lo);
    const __m128i t3 = _mm_loadu_si128((const __m128i *)fws_tab_cur_hi);
    const __m128i maxv =
        _mm_loadu_si128((const __m128i *)(fws_incomplete_max + 48));
    __m128i prev = _mm_setzero_si128(), err = prev, inc = prev;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(s + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(s + i + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(s + i + 48));
        __m128i any = _mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d));
        if (_mm_movemask_epi8(any) == 0) {
            err = _mm_or_si128(err, inc);
            inc = _mm_setzero_si128();
            prev = d;
            continue;
        }
        SSSE3_BLOCK(a);
        SSSE3_BLOCK(b);
        SSSE3_BLOCK(c);
        SSSE3_BLOCK(d);
    }
    for (; i + 16 <= n; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
        if (_mm_movemask_epi8(a) == 0) {
            err = _mm_or_si128(err, inc);
            inc = _mm_setzero_si128();
            prev = a;
            continue;
        }
        SSSE3_BLOCK(a);
    }
    if (i < n) {
        if (n >= 16 + 3) {
            /* last 16 bytes, overlapping bytes already checked (checking
             * them again is harmless: each verdict only depends on a byte
             * and its three predecessors) */
            const uint8_t *q = s + n - 16;
            __m128i a = _mm_loadu_si128((const __m128i *)q);
            err = _mm_or_si128(
                err, utf8_check_ssse3(a,
                                      _mm_loadu_si128((const __m128i *)(q - 1)),
                                      _mm_loadu_si128((const __m128i *)(q - 2)),
                                      _mm_loadu_si128((const __m128i *)(q - 3)),
                                      t1, t2, t3));
            inc = _mm_subs_epu8(a, maxv);
        } else {
            /* short input: zero-padded copy */
            uint8_t tmp[16];
            size_t k;
            memset(tmp, 0, sizeof tmp);
            for (k = i; k < n; k++)
                tmp[k - i] = s[k];
            SSSE3_BLOCK(_mm_loadu_si128((const __m128i *)tmp));
        }
    }
    err = _mm_or_si128(err, inc);
    return _mm_movemask_epi8(_mm_cmpeq_epi8(err, _mm_setzero_si128())) ==
           0xFFFF;
}

/* ---- AVX2 ---- */
FWS_T_AVX2
static void mask_avx2(uint8_t *dst, const uint8_t *src, size_t len,
                      const uint8_t mask[4])
{
    uint32_t m32;
    __m256i mv;
    size_t i = 0;
    uint8_t rot[4];
    m32 = fws_align_dst(&dst, &src, &len, mask);
    memcpy(rot, &m32, 4);
    mask = rot;
    mv = _mm256_set1_epi32((int)m32);
    for (; i + 128 <= len; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(src + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(src + i + 96));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, mv));
        _mm256_storeu_si256((__m256i *)(dst + i + 32), _mm256_xor_si256(b, mv));
        _mm256_storeu_si256((__m256i *)(dst + i + 64), _mm256_xor_si256(c, mv));
        _mm256_storeu_si256((__m256i *)(dst + i + 96), _mm256_xor_si256(d, mv));
    }
    for (; i + 32 <= len; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, mv));
    }
    if (i + 16 <= len) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm_xor_si128(a, _mm256_castsi256_si128(mv)));
        i += 16;
    }
    FWS_MASK_TAIL(dst, src, i, len, mask, m32);
}

FWS_T_AVX2
static int ascii_avx2(const uint8_t *s, size_t n)
{
    size_t i = 0;
    __m256i acc = _mm256_setzero_si256();
    for (; i + 128 <= n; i += 128) {
        __m256i a = _mm256_or_si256(_mm256_loadu_si256((const __m256i *)(s + i)),
                                    _mm256_loadu_si256((const __m256i *)(s + i + 32)));
        __m256i b = _mm256_or_si256(_mm256_loadu_si256((const __m256i *)(s + i + 64)),
                                    _mm256_loadu_si256((const __m256i *)(s + i + 96)));
        if (_mm256_movemask_epi8(_mm256_or_si256(a, b)))
            return 0;
    }
    for (; i + 32 <= n; i += 32)
        acc = _mm256_or_si256(acc, _mm256_loadu_si256((const __m256i *)(s + i)));
    if (_mm256_movemask_epi8(acc))
        return 0;
    return ascii_portable(s + i, n - i);
}

FWS_T_AVX2
static inline __m256i utf8_check_avx2(__m256i in, __m256i p1, __m256i p2,
                                      __m256i p3, __m256i t1, __m256i t2,
                                      __m256i t3)
{
    const __m256i nib = _mm256_set1_epi8(0x0F);
    __m256i a = _mm256_shuffle_epi8(
        t1, _mm256_and_si256(_mm256_srli_epi16(p1, 4), nib));
    __m256i b = _mm256_shuffle_epi8(t2, _mm256_and_si256(p1, nib));
    __m256i c = _mm256_shuffle_epi8(
        t3, _mm256_and_si256(_mm256_srli_epi16(in, 4), nib));
    __m256i sc = _mm256_and_si256(_mm256_and_si256(a, b), c);
    __m256i must = _mm256_or_si256(
        _mm256_subs_epu8(p2, _mm256_set1_epi8(0x60)),
        _mm256_subs_epu8(p3, _mm256_set1_epi8(0x70)));
    must = _mm256_and_si256(must, _mm256_set1_epi8((char)0x80));
    return _mm256_xor_si256(must, sc);
}

/* lane 0 of sh_: high half of prev, lane 1: low half of in */
#define AVX2_BLOCK(in)                                                      \
    do {                                                                    \
        __m256i in_ = (in);                                                 \
        __m256i sh_ = _mm256_permute2x128_si256(prev, in_, 0x21);           \
        err = _mm256_or_si256(                                              \
            err, utf8_check_avx2(in_, _mm256_alignr_epi8(in_, sh_, 15),     \
                                 _mm256_alignr_epi8(in_, sh_, 14),          \
                                 _mm256_alignr_epi8(in_, sh_, 13), t1, t2,  \
                                 t3));                                      \
        inc = _mm256_subs_epu8(in_, maxv);                                  \
        prev = in_;                                                         \
    } while (0)

/* bytes k..15 then zeros, for shifting a vector down by k with pshufb */
static const uint8_t fws_shift_tab[32] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80};

FWS_T_AVX2
static int utf8_avx2(const uint8_t *s, size_t n)
{
    const __m256i t1 = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *)fws_tab_prev_hi));
    const __m256i t2 = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *)fws_tab_prev_lo));
    const __m256i t3 = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *)fws_tab_cur_hi));
    const __m256i maxv =
        _mm256_loadu_si256((const __m256i *)(fws_incomplete_max + 32));
    __m256i prev = _mm256_setzero_si256(), err = prev, inc = prev;
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(s + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(s + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(s + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(s + i + 96));
        __m256i any =
            _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d));
        if (_mm256_movemask_epi8(any) == 0) {
            err = _mm256_or_si256(err, inc);
            inc = _mm256_setzero_si256();
            prev = d;
            continue;
        }
        AVX2_BLOCK(a);
        AVX2_BLOCK(b);
        AVX2_BLOCK(c);
        AVX2_BLOCK(d);
    }
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(s + i));
        if (_mm256_movemask_epi8(a) == 0) {
            err = _mm256_or_si256(err, inc);
            inc = _mm256_setzero_si256();
            prev = a;
            continue;
        }
        AVX2_BLOCK(a);
    }
    if (i < n) {
        if (n >= 32 + 3) {
            /* last 32 bytes, overlapping already checked ones (harmless) */
            const uint8_t *q = s + n - 32;
            __m256i a = _mm256_loadu_si256((const __m256i *)q);
            err = _mm256_or_si256(
                err,
                utf8_check_avx2(a, _mm256_loadu_si256((const __m256i *)(q - 1)),
                                _mm256_loadu_si256((const __m256i *)(q - 2)),
                                _mm256_loadu_si256((const __m256i *)(q - 3)),
                                t1, t2, t3));
            inc = _mm256_subs_epu8(a, maxv);
        } else if (i == 0 && n >= 16) {
            /* 16..31 bytes: two overlapping 16-byte loads, the upper one
             * shifted down so that the vector is s[0..n) and zeros */
            __m128i lo = _mm_loadu_si128((const __m128i *)s);
            __m128i hi = _mm_loadu_si128((const __m128i *)(s + n - 16));
            hi = _mm_shuffle_epi8(
                hi, _mm_loadu_si128((const __m128i *)(fws_shift_tab + 32 - n)));
            AVX2_BLOCK(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
        } else {
            uint8_t tmp[32];
            size_t k;
            memset(tmp, 0, sizeof tmp);
            for (k = i; k < n; k++)
                tmp[k - i] = s[k];
            AVX2_BLOCK(_mm256_loadu_si256((const __m256i *)tmp));
        }
    }
    err = _mm256_or_si256(err, inc);
    return _mm256_testz_si256(err, err);
}

/* ---- AVX-512BW ---- */
FWS_T_AVX512
static void mask_avx512(uint8_t *dst, const uint8_t *src, size_t len,
                        const uint8_t mask[4])
{
    /* In place on buffers past L1, 512-bit stores measured slower than 256-bit ones
     * (57 vs 66 GB/s from 64 KiB to 1 MiB on Sapphire Rapids); below that, and out of
     * place at any size, they are as fast or faster (175 vs 130 GB/s at 32 KiB in place). */
    if (dst == src && len >= (64u << 10)) {
        mask_avx2(dst, src, len, mask);
        return;
    }
    uint32_t m32;
    __m512i mv;
    size_t i = 0;
    uint8_t rot[4];
    m32 = fws_align_dst(&dst, &src, &len, mask);
    memcpy(rot, &m32, 4);
    mask = rot;
    mv = _mm512_set1_epi32((int)m32);
    for (; i + 256 <= len; i += 256) {
        __m512i a = _mm512_loadu_si512((const void *)(src + i));
        __m512i b = _mm512_loadu_si512((const void *)(src + i + 64));
        __m512i c = _mm512_loadu_si512((const void *)(src + i + 128));
        __m512i d = _mm512_loadu_si512((const void *)(src + i + 192));
        _mm512_storeu_si512((void *)(dst + i), _mm512_xor_si512(a, mv));
        _mm512_storeu_si512((void *)(dst + i + 64), _mm512_xor_si512(b, mv));
        _mm512_storeu_si512((void *)(dst + i + 128), _mm512_xor_si512(c, mv));
        _mm512_storeu_si512((void *)(dst + i + 192), _mm512_xor_si512(d, mv));
    }
    for (; i + 64 <= len; i += 64) {
        __m512i a = _mm512_loadu_si512((const void *)(src + i));
        _mm512_storeu_si512((void *)(dst + i), _mm512_xor_si512(a, mv));
    }
    /* Tail without masked stores: a masked store followed by a load of the
     * same bytes (the next in-place call, or the UTF-8 check of the
     * unmasked payload) cannot be store-forwarded and measured ~4x slower
     * for short in-place messages. */
    if (i + 32 <= len) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm256_xor_si256(a, _mm512_castsi512_si256(mv)));
        i += 32;
    }
    if (i + 16 <= len) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm_xor_si128(a, _mm512_castsi512_si128(mv)));
        i += 16;
    }
    FWS_MASK_TAIL(dst, src, i, len, mask, m32);
}

FWS_T_AVX512
static int ascii_avx512(const uint8_t *s, size_t n)
{
    size_t i = 0;
    __m512i acc = _mm512_setzero_si512();
    for (; i + 256 <= n; i += 256) {
        __m512i a = _mm512_or_si512(_mm512_loadu_si512((const void *)(s + i)),
                                    _mm512_loadu_si512((const void *)(s + i + 64)));
        __m512i b = _mm512_or_si512(_mm512_loadu_si512((const void *)(s + i + 128)),
                                    _mm512_loadu_si512((const void *)(s + i + 192)));
        if (_mm512_movepi8_mask(_mm512_or_si512(a, b)))
            return 0;
    }
    for (; i + 64 <= n; i += 64)
        acc = _mm512_or_si512(acc, _mm512_loadu_si512((const void *)(s + i)));
    if (i < n) {
        /* zero-filled masked load: nothing past s + n is touched */
        __mmask64 k = (__mmask64)((UINT64_C(1) << (n - i)) - 1);
        acc = _mm512_or_si512(acc, _mm512_maskz_loadu_epi8(k, (const void *)(s + i)));
    }
    return _mm512_movepi8_mask(acc) == 0;
}

FWS_T_AVX512
static inline void utf8_block_avx512(__m512i in, __m512i *prev, __m512i *err,
                                     __m512i *inc, __m512i t1, __m512i t2,
                                     __m512i t3, __m512i maxv)
{
    const __m512i nib = _mm512_set1_epi8(0x0F);
    /* 128-bit lanes: [prev.3, in.0, in.1, in.2] */
    __m512i sh = _mm512_alignr_epi32(in, *prev, 12);
    __m512i p1 = _mm512_alignr_epi8(in, sh, 15);
    __m512i p2 = _mm512_alignr_epi8(in, sh, 14);
    __m512i p3 = _mm512_alignr_epi8(in, sh, 13);
    __m512i a = _mm512_shuffle_epi8(
        t1, _mm512_and_si512(_mm512_srli_epi16(p1, 4), nib));
    __m512i b = _mm512_shuffle_epi8(t2, _mm512_and_si512(p1, nib));
    __m512i c = _mm512_shuffle_epi8(
        t3, _mm512_and_si512(_mm512_srli_epi16(in, 4), nib));
    /* sc = a & b & c */
    __m512i sc = _mm512_ternarylogic_epi32(a, b, c, 0x80);
    __mmask64 m = _mm512_cmpge_epu8_mask(p2, _mm512_set1_epi8((char)0xE0)) |
                  _mm512_cmpge_epu8_mask(p3, _mm512_set1_epi8((char)0xF0));
    __m512i must = _mm512_maskz_mov_epi8(m, _mm512_set1_epi8((char)0x80));
    /* err |= must ^ sc */
    *err = _mm512_ternarylogic_epi32(*err, must, sc, 0xF6);
    *inc = _mm512_subs_epu8(in, maxv);
    *prev = in;
}

FWS_T_AVX512
static int utf8_avx512(const uint8_t *s, size_t n)
{
    const __m512i t1 = _mm512_broadcast_i32x4(
        _mm_loadu_si128((const __m128i *)fws_tab_prev_hi));
    const __m512i t2 = _mm512_broadcast_i32x4(
        _mm_loadu_si128((const __m128i *)fws_tab_prev_lo));
    const __m512i t3 = _mm512_broadcast_i32x4(
        _mm_loadu_si128((const __m128i *)fws_tab_cur_hi));
    const __m512i maxv = _mm512_loadu_si512((const void *)fws_incomplete_max);
    __m512i prev = _mm512_setzero_si512(), err = prev, inc = prev;
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        __m512i a = _mm512_loadu_si512((const void *)(s + i));
        __m512i b = _mm512_loadu_si512((const void *)(s + i + 64));
        if (_mm512_movepi8_mask(_mm512_or_si512(a, b)) == 0) {
            err = _mm512_or_si512(err, inc);
            inc = _mm512_setzero_si512();
            prev = b;
            continue;
        }
        utf8_block_avx512(a, &prev, &err, &inc, t1, t2, t3, maxv);
        utf8_block_avx512(b, &prev, &err, &inc, t1, t2, t3, maxv);
    }
    if (i + 64 <= n) {
        __m512i a = _mm512_loadu_si512((const void *)(s + i));
        utf8_block_avx512(a, &prev, &err, &inc, t1, t2, t3, maxv);
        i += 64;
    }
    if (i < n) {
        /* zero-filled masked load: nothing past s + n is touched */
        __mmask64 k = (__mmask64)((UINT64_C(1) << (n - i)) - 1);
        __m512i a = _mm512_maskz_loadu_epi8(k, (const void *)(s + i));
        utf8_block_avx512(a, &prev, &err, &inc, t1, t2, t3, maxv);
    }
    err = _mm512_or_si512(err, inc);
    return _mm512_test_epi64_mask(err, err) == 0;
}

/* ---- CPU detection ---- */
static void fws_cpuid(unsigned leaf, unsigned sub, unsigned r[4])
{
#if defined(_MSC_VER) && !defined(__clang__)
    int x[4];
    __cpuidex(x, (int)leaf, (int)sub);
    r[0] = (unsigned)x[0];
    r[1] = (unsigned)x[1];
    r[2] = (unsigned)x[2];
    r[3] = (unsigned)x[3];
#else
    unsigned a, b, c, d;
    __cpuid_count(leaf, sub, a, b, c, d);
    r[0] = a;
    r[1] = b;
    r[2] = c;
    r[3] = d;
#endif
}

static uint64_t fws_xgetbv0(void)
{
#if defined(_MSC_VER) && !defined(__clang__)
    return (uint64_t)_xgetbv(0);
#else
    uint32_t lo, hi;
    /* xgetbv, spelled as bytes for old assemblers */
    __asm__ __volatile__(".byte 0x0f, 0x01, 0xd0"
                         : "=a"(lo), "=d"(hi)
                         : "c"(0));
    return ((uint64_t)hi << 32) | lo;
#endif
}

#define FWS_CPU_SSSE3 1u
#define FWS_CPU_AVX2 2u
#define FWS_CPU_AVX512BW 4u
#define FWS_CPU_VBMI2 8u     /* Ice Lake / Zen 4 and later */

static unsigned fws_x86_features(void)
{
    unsigned r[4], maxleaf, f = 0;
    uint64_t xcr0 = 0;
    int osxsave;
    fws_cpuid(0, 0, r);
    maxleaf = r[0];
    if (maxleaf < 1)
        return 0;
    fws_cpuid(1, 0, r);
    if (r[2] & (1u << 9))
        f |= FWS_CPU_SSSE3;
    osxsave = (r[2] & (1u << 27)) != 0;
    if (!osxsave || !(r[2] & (1u << 28)) || maxleaf < 7)
        return f;                      /* no AVX at all */
    xcr0 = fws_xgetbv0();
    if ((xcr0 & 0x6) != 0x6)           /* OS does not save XMM/YMM state */
        return f;
    fws_cpuid(7, 0, r);
    if (r[1] & (1u << 5))
        f |= FWS_CPU_AVX2;
    if ((r[1] & (1u << 16)) && (r[1] & (1u << 30)) &&
        (xcr0 & 0xE6) == 0xE6)         /* opmask + ZMM state enabled */
        f |= FWS_CPU_AVX512BW;
    if (r[2] & (1u << 6))
        f |= FWS_CPU_VBMI2;
    return f;
}
#endif /* FWS_X86 */

/* ------------------------------------------------------------------------ */
/* aarch64 NEON                                                             */
/* ------------------------------------------------------------------------ */

#if defined(FWS_NEON)
static void mask_neon(uint8_t *dst, const uint8_t *src, size_t len,
                      const uint8_t mask[4])
{
    uint8_t m16[16];
    uint8x16_t mv;
    uint32_t m32;
    size_t i = 0;
    for (i = 0; i < 16; i++)
        m16[i] = mask[i & 3];
    mv = vld1q_u8(m16);
    i = 0;
    for (; i + 64 <= len; i += 64) {
        uint8x16_t a = vld1q_u8(src + i);
        uint8x16_t b = vld1q_u8(src + i + 16);
        uint8x16_t c = vld1q_u8(src + i + 32);
        uint8x16_t d = vld1q_u8(src + i + 48);
        vst1q_u8(dst + i, veorq_u8(a, mv));
        vst1q_u8(dst + i + 16, veorq_u8(b, mv));
        vst1q_u8(dst + i + 32, veorq_u8(c, mv));
        vst1q_u8(dst + i + 48, veorq_u8(d, mv));
    }
    for (; i + 16 <= len; i += 16)
        vst1q_u8(dst + i, veorq_u8(vld1q_u8(src + i), mv));
    memcpy(&m32, mask, 4);
    FWS_MASK_TAIL(dst, src, i, len, mask, m32);
}

static int ascii_neon(const uint8_t *s, size_t n)
{
    size_t i = 0;
    uint8x16_t acc = vdupq_n_u8(0);
    for (; i + 64 <= n; i += 64) {
        uint8x16_t a = vorrq_u8(vld1q_u8(s + i), vld1q_u8(s + i + 16));
        uint8x16_t b = vorrq_u8(vld1q_u8(s + i + 32), vld1q_u8(s + i + 48));
        if (vmaxvq_u8(vorrq_u8(a, b)) >= 0x80)
            return 0;
    }
    for (; i + 16 <= n; i += 16)
        acc = vorrq_u8(acc, vld1q_u8(s + i));
    if (vmaxvq_u8(acc) >= 0x80)
        return 0;
    return ascii_portable(s + i, n - i);
}

static inline uint8x16_t utf8_check_neon(uint8x16_t in, uint8x16_t p1,
                                         uint8x16_t p2, uint8x16_t p3,
                                         uint8x16_t t1, uint8x16_t t2,
                                         uint8x16_t t3)
{
    uint8x16_t a = vqtbl1q_u8(t1, vshrq_n_u8(p1, 4));
    uint8x16_t b = vqtbl1q_u8(t2, vandq_u8(p1, vdupq_n_u8(0x0F)));
    uint8x16_t c = vqtbl1q_u8(t3, vshrq_n_u8(in, 4));
    uint8x16_t sc = vandq_u8(vandq_u8(a, b), c);
    uint8x16_t must = vorrq_u8(vcgeq_u8(p2, vdupq_n_u8(0xE0)),
                               vcgeq_u8(p3, vdupq_n_u8(0xF0)));
    must = vandq_u8(must, vdupq_n_u8(0x80));
    return veorq_u8(must, sc);
}

#define NEON_BLOCK(in)                                                      \
    do {                                                                    \
        uint8x16_t in_ = (in);                                              \
        err = vorrq_u8(err, utf8_check_neon(in_, vextq_u8(prev, in_, 15),   \
                                            vextq_u8(prev, in_, 14),        \
                                            vextq_u8(prev, in_, 13), t1,    \
                                            t2, t3));                       \
        inc = vqsubq_u8(in_, maxv);                                         \
        prev = in_;                                                         \
    } while (0)

static int utf8_neon(const uint8_t *s, size_t n)
{
    const uint8x16_t t1 = vld1q_u8(fws_tab_prev_hi);
    const uint8x16_t t2 = vld1q_u8(fws_tab_prev_lo);
    const uint8x16_t t3 = vld1q_u8(fws_tab_cur_hi);
    const uint8x16_t maxv = vld1q_u8(fws_incomplete_max + 48);
    uint8x16_t prev = vdupq_n_u8(0), err = prev, inc = prev;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint8x16_t a = vld1q_u8(s + i);
        uint8x16_t b = vld1q_u8(s + i + 16);
        uint8x16_t c = vld1q_u8(s + i + 32);
        uint8x16_t d = vld1q_u8(s + i + 48);
        uint8x16_t any = vorrq_u8(vorrq_u8(a, b), vorrq_u8(c, d));
        if (vmaxvq_u8(any) < 0x80) {
            err = vorrq_u8(err, inc);
            inc = vdupq_n_u8(0);
            prev = d;
            continue;
        }
        NEON_BLOCK(a);
        NEON_BLOCK(b);
        NEON_BLOCK(c);
        NEON_BLOCK(d);
    }
    for (; i + 16 <= n; i += 16) {
        uint8x16_t a = vld1q_u8(s + i);
        if (vmaxvq_u8(a) < 0x80) {
            err = vorrq_u8(err, inc);
            inc = vdupq_n_u8(0);
            prev = a;
            continue;
        }
        NEON_BLOCK(a);
    }
    if (i < n) {
        if (n >= 16 + 3) {
            /* last 16 bytes, overlapping already checked ones (harmless) */
            const uint8_t *q = s + n - 16;
            uint8x16_t a = vld1q_u8(q);
            err = vorrq_u8(err, utf8_check_neon(a, vld1q_u8(q - 1),
                                                vld1q_u8(q - 2),
                                                vld1q_u8(q - 3), t1, t2, t3));
            inc = vqsubq_u8(a, maxv);
        } else {
            uint8_t tmp[16];
            size_t k;
            memset(tmp, 0, sizeof tmp);
            for (k = i; k < n; k++)
                tmp[k - i] = s[k];
            NEON_BLOCK(vld1q_u8(tmp));
        }
    }
    err = vorrq_u8(err, inc);
    return vmaxvq_u8(err) == 0;
}
#endif /* FWS_NEON */

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                 */
/* ------------------------------------------------------------------------ */

typedef void (*fws_mask_fn)(uint8_t *, const uint8_t *, size_t,
                            const uint8_t *);
typedef int (*fws_utf8_fn)(const uint8_t *, size_t);
typedef int (*fws_ascii_fn)(const uint8_t *, size_t);

static void mask_resolve(uint8_t *d, const uint8_t *s, size_t n,
                         const uint8_t *m);
static int utf8_resolve(const uint8_t *s, size_t n);
static int ascii_resolve(const uint8_t *s, size_t n);

static fws_mask_fn g_mask = mask_resolve;
static fws_utf8_fn g_utf8 = utf8_resolve;
static fws_ascii_fn g_ascii = ascii_resolve;
static const char *g_isa = "portable";
static int g_inited = 0;

static int fws_select(const char *isa)
{
    if (strcmp(isa, "portable") == 0) {
        g_mask = mask_portable;
        g_utf8 = utf8_scalar;
        g_ascii = ascii_portable;
        g_isa = "portable";
        return 0;
    }
#if defined(FWS_X86)
    {
        unsigned f = fws_x86_features();
        if (strcmp(isa, "sse2") == 0) {
            g_mask = mask_sse2;
            g_utf8 = (f & FWS_CPU_SSSE3) ? utf8_ssse3 : utf8_scalar;
            g_ascii = ascii_sse2;
            g_isa = "sse2";
            return 0;
        }
        if (strcmp(isa, "avx2") == 0 && (f & FWS_CPU_AVX2)) {
            g_mask = mask_avx2;
            g_utf8 = utf8_avx2;
            g_ascii = ascii_avx2;
            g_isa = "avx2";
            return 0;
        }
        if (strcmp(isa, "avx512bw") == 0 && (f & FWS_CPU_AVX512BW)) {
            g_mask = mask_avx512;
            g_utf8 = utf8_avx512;
            g_ascii = ascii_avx512;
            g_isa = "avx512bw";
            return 0;
        }
    }
#endif
#if defined(FWS_NEON)
    if (strcmp(isa, "neon") == 0) {
        g_mask = mask_neon;
        g_utf8 = utf8_neon;
        g_ascii = ascii_neon;
        g_isa = "neon";
        return 0;
    }
#endif
    return -1;
}

void turbows_kernels_init(void)
{
    if (g_inited)
        return;
#if defined(FWS_X86)
    /* AVX-512 is only picked by default on CPUs that also have VBMI2
     * (Ice Lake, Sapphire Rapids, Zen 4 and later): there 512-bit integer
     * code costs little or no clock frequency, and it measured faster than
     * AVX2 (tests/c/bench_kernels.c).  On Skylake-SP / Cascade Lake the
     * frequency drop would also slow down the surrounding Python code, so
     * AVX2 is used there (AVX-512 can still be forced). */
    if ((fws_x86_features() & FWS_CPU_VBMI2) && fws_select("avx512bw") == 0) {
        g_inited = 1;
        return;
    }
#endif
    if (fws_select("avx2") != 0 && fws_select("neon") != 0 &&
        fws_select("sse2") != 0)
        fws_select("portable");
    g_inited = 1;
}

const char *turbows_kernels_isa(void)
{
    turbows_kernels_init();
    return g_isa;
}

int turbows_kernels_force(const char *isa)
{
    turbows_kernels_init();
    if (isa == NULL)
        return -1;
    return fws_select(isa);
}

static void mask_resolve(uint8_t *d, const uint8_t *s, size_t n,
                         const uint8_t *m)
{
    turbows_kernels_init();
    g_mask(d, s, n, m);
}

static int ascii_resolve(const uint8_t *s, size_t n)
{
    turbows_kernels_init();
    return g_ascii(s, n);
}

static int utf8_resolve(const uint8_t *s, size_t n)
{
    turbows_kernels_init();
    return g_utf8(s, n);
}

/* ------------------------------------------------------------------------ */
/* Public entry points                                                      */
/* ------------------------------------------------------------------------ */

void turbows_mask(uint8_t *dst, const uint8_t *src, size_t len,
                 const uint8_t mask[4])
{
    if (len < FWS_MASK_SCALAR_MAX) {
        size_t i;
        for (i = 0; i < len; i++)
            dst[i] = (uint8_t)(src[i] ^ mask[i & 3]);
        return;
    }
    g_mask(dst, src, len, mask);
}

int turbows_is_ascii(const uint8_t *buf, size_t len)
{
    if (len < 16)
        return ascii_portable(buf, len);
    return g_ascii(buf, len);
}

int turbows_mask_ascii(uint8_t *dst, const uint8_t *src, size_t len,
                      const uint8_t mask[4])
{
    int ascii = 1;
    size_t off = 0, n;
    if (len < FWS_MASK_SCALAR_MAX) {
        uint8_t acc = 0;
        for (off = 0; off < len; off++) {
            dst[off] = (uint8_t)(src[off] ^ mask[off & 3]);
            acc |= dst[off];
        }
        return acc < 0x80;
    }
    while (off < len) {
        n = len - off < FWS_ASCII_BLOCK ? len - off : FWS_ASCII_BLOCK;
        g_mask(dst + off, src + off, n, mask);
        if (ascii)
            ascii = turbows_is_ascii(dst + off, n);
        off += n;
    }
    return ascii;
}

int turbows_utf8_valid(const uint8_t *buf, size_t len)
{
    if (len < FWS_UTF8_SCALAR_MAX)
        return utf8_scalar(buf, len);
    return g_utf8(buf, len);
}

void turbows_utf8_init(turbows_utf8_state *st)
{
    memset(st, 0, sizeof *st);
}

int turbows_utf8_complete(const turbows_utf8_state *st)
{
    return st->npending == 0;
}

int turbows_utf8_feed(turbows_utf8_state *st, const uint8_t *buf, size_t len)
{
    size_t i = 0, n, tail = 0, k;
    const uint8_t *p;

    /* 1. finish the sequence left open by the previous piece */
    if (st->npending) {
        size_t need = lead_len(st->pending[0]);
        while (st->npending < need && i < len)
            st->pending[st->npending++] = buf[i++];
        if (!prefix_ok(st->pending, st->npending))
            return 0;
        if (st->npending < need)
            return 1;                  /* piece exhausted, still open */
        st->npending = 0;
    }

    /* 2. split off a possibly incomplete last sequence (<= 3 bytes) */
    p = buf + i;
    n = len - i;
    for (k = 1; k <= 3 && k <= n; k++) {
        uint8_t b = p[n - k];
        if (!is_cont(b)) {
            if (b >= 0xC0 && lead_len(b) > k)
                tail = k;
            break;
        }
    }

    /* 3. the body must be complete UTF-8, the tail a valid prefix */
    if (!turbows_utf8_valid(p, n - tail))
        return 0;
    if (tail) {
        if (!prefix_ok(p + n - tail, tail))
            return 0;
        memcpy(st->pending, p + n - tail, tail);
        st->npending = (uint8_t)tail;
    }
    return 1;
}
