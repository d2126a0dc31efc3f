#!/usr/bin/env bash
# The SIMD dispatch on older x86-64 CPUs: the kernel tests (tests/codec/test_kernel_dispatch.py)
# run under qemu-user emulating CPU models that lack what this machine has, against the
# installed turbows of PYTHON. Each model must get the expected kernel at import, and only the
# kernels it can run may be forced. QEMU raises SIGILL for an instruction the model lacks
# (SSSE3's pshufb on qemu64, AVX2 on Nehalem), so a wrong choice also crashes the run. Only the
# compiled codec's runs (the pure one has no kernels) and the expectation test are selected.
# AVX-512 is not emulated by QEMU's TCG: its kernels are tested natively on an AVX-512 host.
#
#   tools/test_cpu_models.sh PYTHON TESTS_DIR     # TESTS_DIR holds tests/ and pyproject.toml
set -euo pipefail
PY=$1
TREE=$2
if ! command -v qemu-x86_64 >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user >/dev/null
    else
        echo "test_cpu_models: qemu-x86_64 is missing (apt-get install qemu-user)" >&2
        exit 1
    fi
fi

# model : kernel picked at import : every kernel that can be forced
MODELS=(
    "qemu64:sse2:portable,sse2"          # x86-64 baseline: SSE2, SSE3; no SSSE3, no AVX
    "Nehalem:sse2:portable,sse2"         # SSSE3 and SSE4.2 (SSSE3 UTF-8 kernel); no AVX
    "Haswell:avx2:portable,sse2,avx2"    # AVX2, no AVX-512
)
status=0
cd "$TREE"
for entry in "${MODELS[@]}"; do
    IFS=: read -r model isa isas <<<"$entry"
    echo "== qemu-x86_64 -cpu $model: expect $isa, usable $isas"
    # The warnings filtered out name host features that TCG does not emulate (pcid, x2apic...).
    TURBOWS_EXPECT_ISA=$isa TURBOWS_EXPECT_ISAS=$isas TURBOWS_REQUIRE_EXTENSIONS=1 \
        timeout 900 qemu-x86_64 -cpu "$model" "$PY" -m pytest -q -p no:cacheprovider \
        -k "cython or expected" tests/codec/test_kernel_dispatch.py \
        2> >(grep -v "TCG doesn't support requested feature" >&2) || status=1
done
exit "$status"
