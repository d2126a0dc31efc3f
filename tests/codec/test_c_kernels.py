"""Builds and runs the C kernel tests (tests/c/test_kernels.c).

The C program compares every kernel the CPU supports (portable, SSE2, AVX2,
AVX-512BW, NEON) with reference implementations.  It is run once under
AddressSanitizer + UBSan and once optimised without sanitizers.  A second
test loads the kernels with ctypes and cross-checks them against CPython's
own UTF-8 codec.
"""

import codecs
import ctypes
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from c_toolchain import SANITIZERS, kernel_test_compiler, sanitizer_failure, unavailable

ROOT = Path(__file__).resolve().parents[2]
KDIR = ROOT / "src" / "turbows" / "_kernels"
KSRC = KDIR / "turbows_kernels.c"
TSRC = ROOT / "tests" / "c" / "test_kernels.c"


def _cc():
    """The working C compiler, or skip (fail under TURBOWS_REQUIRE_CC) saying why not."""
    if not KSRC.exists():
        unavailable(f"the kernel sources are not in this tree ({KDIR}): tests run from a copy")
    cc, why = kernel_test_compiler()
    if cc is None:
        unavailable(why)
    return cc


def _build(tmp_path, name, flags, sources, extra=()):
    out = tmp_path / name
    cmd = [*_cc().split(), *flags, "-I", str(KDIR), *map(str, sources), "-o", str(out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    assert "warning" not in proc.stderr.lower(), proc.stderr
    return out


def _run(exe):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    proc = subprocess.run([str(exe)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, f"{exe}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert " 0 failed" in proc.stdout.splitlines()[-1], proc.stdout
    return proc.stdout


def test_c_kernels_sanitized(tmp_path):
    failure = sanitizer_failure(_cc())
    if failure is not None:
        unavailable(f"AddressSanitizer/UBSan do not link or run: {failure}")
    exe = _build(
        tmp_path, "test_kernels_asan",
        ["-std=c99", "-Wall", "-Wextra", "-O1", "-g",
         *SANITIZERS, "-fno-sanitize-recover=all"],
        [TSRC, KSRC])
    _run(exe)


def test_c_kernels_optimized(tmp_path):
    exe = _build(tmp_path, "test_kernels_o2",
                 ["-std=c99", "-Wall", "-Wextra", "-O2"], [TSRC, KSRC])
    _run(exe)


def test_c_kernels_portable_only_build(tmp_path):
    """The fallback for compilers without target attributes still works."""
    exe = _build(tmp_path, "test_kernels_portable",
                 ["-std=c99", "-Wall", "-Wextra", "-O2",
                  "-DTURBOWS_KERNELS_PORTABLE_ONLY"], [TSRC, KSRC])
    out = _run(exe)
    assert "default isa: portable" in out


# --------------------------------------------------------------------------
# ctypes cross-check against CPython's codec
# --------------------------------------------------------------------------

class _State(ctypes.Structure):
    _fields_ = [("pending", ctypes.c_uint8 * 4), ("npending", ctypes.c_uint8)]


@pytest.fixture(scope="module")
def klib(tmp_path_factory):
    _cc()
    if sys.platform == "win32":
        pytest.skip("shared-library build not set up for Windows")
    tmp = tmp_path_factory.mktemp("klib")
    so = _build(tmp, "libturbows_kernels.so",
                ["-std=c99", "-Wall", "-Wextra", "-O2", "-shared", "-fPIC"],
                [KSRC])
    lib = ctypes.CDLL(str(so))
    lib.turbows_kernels_isa.restype = ctypes.c_char_p
    lib.turbows_kernels_force.argtypes = [ctypes.c_char_p]
    lib.turbows_utf8_valid.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.turbows_utf8_feed.argtypes = [ctypes.POINTER(_State), ctypes.c_char_p,
                                     ctypes.c_size_t]
    lib.turbows_utf8_complete.argtypes = [ctypes.POINTER(_State)]
    lib.turbows_mask.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_size_t, ctypes.c_char_p]
    lib.turbows_kernels_init()
    lib.default_isa = lib.turbows_kernels_isa()
    return lib


ISAS = ["portable", "sse2", "avx2", "avx512bw", "neon"]


def _py_valid(b):
    try:
        b.decode("utf-8")
        return 1
    except UnicodeDecodeError:
        return 0


def _samples(rng):
    pool = [b"", b"a", b"\xc3\xa9", "€".encode(), "😀".encode(),
            b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe0\x80\xaf",
            b"\xf0\x8f\xbf\xbf", b"\xf5", b"\xff", b"\x80"]
    text = "aé€😀Жж中文 ".encode() * 3
    for _ in range(400):
        n = rng.randrange(0, 300)
        k = rng.random()
        if k < 0.3:
            yield bytes(rng.randrange(256) for _ in range(n))
        else:
            s = bytearray()
            while len(s) < n:
                s += rng.choice(pool) if rng.random() < 0.1 else text[:rng.randrange(20)]
            if k < 0.7 and s:
                s[rng.randrange(len(s))] = rng.randrange(256)
            yield bytes(s)


def _cpython_feed_ok(prefix_pieces):
    dec = codecs.getincrementaldecoder("utf-8")()
    results = []
    for piece in prefix_pieces:
        try:
            dec.decode(piece, final=False)
            results.append(1)
        except UnicodeDecodeError:
            results.append(0)
            break
    return results, dec


def _ends_with_truncated_surrogate(data):
    # CPython's incremental decoder deliberately accepts a piece ending in
    # ED A0..BF (so that 'surrogatepass' can be applied once the third byte
    # arrives); turbows fails fast there, as RFC 6455 allows and the kernel
    # API requires.
    return len(data) >= 2 and data[-2] == 0xED and 0xA0 <= data[-1] <= 0xBF


@pytest.mark.parametrize("isa", ISAS)
def test_against_cpython(klib, isa):
    if klib.turbows_kernels_force(isa.encode()) != 0:
        pytest.skip(f"{isa} not supported on this CPU")
    try:
        rng = random.Random(1234)
        for data in _samples(rng):
            assert klib.turbows_utf8_valid(data, len(data)) == _py_valid(data), data
            # random split points
            cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randrange(4)))
            pieces, last = [], 0
            for c in cuts + [len(data)]:
                pieces.append(data[last:c])
                last = c
            want, dec = _cpython_feed_ok(pieces)
            st = _State()
            klib.turbows_utf8_init(ctypes.byref(st))
            got, fed = [], b""
            for piece in pieces:
                fed += piece
                r = klib.turbows_utf8_feed(ctypes.byref(st), piece, len(piece))
                got.append(r)
                if not r:
                    break
            if got != want:
                # the only permitted difference: fail-fast on a truncated
                # surrogate at the end of a piece
                idx = got.index(0)
                assert want[idx] == 1 and _ends_with_truncated_surrogate(
                    b"".join(pieces[: idx + 1])), (pieces, got, want)
                continue
            if got and got[-1] == 1:
                complete = klib.turbows_utf8_complete(ctypes.byref(st))
                assert complete == _py_valid(data), data
        # masking
        for n in list(range(0, 70)) + [125, 1000, 4099]:
            src = bytes(rng.randrange(256) for _ in range(n))
            mask = bytes(rng.randrange(256) for _ in range(4))
            dst = ctypes.create_string_buffer(n)
            klib.turbows_mask(dst, src, n, mask)
            assert dst.raw == bytes(b ^ mask[i % 4] for i, b in enumerate(src))
    finally:
        klib.turbows_kernels_force(klib.default_isa)


def test_feed_fail_fast_examples(klib):
    for bad in (b"\xed\xa0", b"\xf4\x90", b"\xe0\x80", b"\xf5"):
        st = _State()
        klib.turbows_utf8_init(ctypes.byref(st))
        data = b"ok " + bad
        assert klib.turbows_utf8_feed(ctypes.byref(st), data, len(data)) == 0
    st = _State()
    klib.turbows_utf8_init(ctypes.byref(st))
    assert klib.turbows_utf8_feed(ctypes.byref(st), b"\xf0\x9f", 2) == 1
    assert klib.turbows_utf8_complete(ctypes.byref(st)) == 0
    assert klib.turbows_utf8_feed(ctypes.byref(st), b"\x98", 1) == 1
    assert klib.turbows_utf8_feed(ctypes.byref(st), b"\x80!", 2) == 1
    assert klib.turbows_utf8_complete(ctypes.byref(st)) == 1
