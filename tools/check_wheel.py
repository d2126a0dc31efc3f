"""Check what turbows ships: every wheel and sdist given on the command line.

    python tools/check_wheel.py wheelhouse/*.whl wheelhouse/*.tar.gz

Wheels (Linux):
- the three extensions (codec, socket transport, benchmark client) are there, need nothing but
  glibc's own libraries, carry no RPATH or RUNPATH and use no glibc symbol newer than the
  wheel's manylinux tag allows;
- the ``.pyi`` stubs and ``py.typed`` are there; no ``.pyx``, ``.pxd``, C source or header, no
  tests, no build or source-tree paths, inside the archive or inside the extensions;
- x86-64: AVX and AVX-512 instructions (VEX/EVEX encodings, ymm/zmm/opmask registers) appear
  only inside the per-ISA kernel functions (``*_avx2``, ``*_avx512``), found by disassembling
  every extension with objdump, and the kernels themselves are there.

Sdists: the sources a build needs (``.pyx``, ``.pxd``, kernels, stubs, ``py.typed``), and no
compiled or generated file.

Exits non-zero, listing every problem, if any check fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, Iterable, List, Set

EXTENSIONS = ("turbows/_speedups", "turbows/asyncio/_fastio", "turbows/bench/_loadgen")
STUBS = ("turbows/_speedups.pyi", "turbows/asyncio/_fastio.pyi", "turbows/bench/_loadgen.pyi")
# glibc's own libraries: what a manylinux wheel may need without bundling it.
GLIBC_LIBS = re.compile(r"^(libc|libm|libpthread|libdl|librt|ld-linux[-\w.]*)\.so(\.\d+)*$")
FORBIDDEN_SUFFIXES = (".pyx", ".pxd", ".c", ".h", ".o", ".pyc")
# Paths that betray a build or the source tree (in names in the archive or strings in a binary).
BUILD_PATHS = re.compile(
    rb"(/tmp/|/root/|/home/|turbows-wheels\.|pip-[a-z]+-[a-z0-9_]{6,}|/src/turbows/)"
)
# x86-64 functions allowed to use AVX: the per-ISA kernels of src/turbows/_kernels.
AVX_FUNCTIONS = re.compile(r"^(\w+_avx2|\w+_avx512)(\.\w+)*$")
AVX_OPERANDS = re.compile(r"%(ymm\d+|zmm\d+|k[0-7])\b")
FUNCTION_HEADER = re.compile(r"^[0-9a-f]+ <([^>]+)>:$")


def run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def glibc_limit(name: str) -> tuple:
    m = re.search(r"manylinux_(\d+)_(\d+)_", name)
    if m:
        return (int(m.group(1)), int(m.group(2)))
    if "manylinux2014" in name:
        return (2, 17)
    return (99, 0)


def avx_functions(so: Path) -> Dict[str, int]:
    """Function symbol -> number of its instructions that need AVX (VEX or EVEX encoded)."""
    found: Dict[str, int] = {}
    function = "?"
    for line in run("objdump", "-d", "--no-show-raw-insn", str(so)).splitlines():
        header = FUNCTION_HEADER.match(line)
        if header:
            function = header.group(1)
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        insn = parts[-1].strip()
        mnemonic = insn.split(" ", 1)[0]
        # Every VEX/EVEX instruction's mnemonic starts with "v" (vmovdqu, vpxor, vzeroupper);
        # the only legacy ones that do are verr/verw.
        vex = mnemonic.startswith("v") and mnemonic not in ("verr", "verw")
        if vex or AVX_OPERANDS.search(insn):
            found[function] = found.get(function, 0) + 1
    return found


def check_extension(so: Path, rel: str, limit: tuple, machine: str) -> List[str]:
    problems: List[str] = []
    dynamic = run("readelf", "-d", "-W", str(so))
    for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic):
        if not GLIBC_LIBS.match(lib):
            problems.append(f"{rel}: needs {lib}, which is not part of glibc")
    for kind in ("RPATH", "RUNPATH"):
        if f"({kind})" in dynamic:
            problems.append(f"{rel}: carries a {kind}")
    versions: Set[tuple] = set()
    for v in re.findall(r"GLIBC_(\d+)\.(\d+)", run("readelf", "--dyn-syms", "-W", str(so))):
        versions.add((int(v[0]), int(v[1])))
    too_new = sorted(v for v in versions if v > limit)
    if too_new:
        problems.append(f"{rel}: uses glibc symbols from {too_new}, newer than {limit}")
    found = BUILD_PATHS.search(so.read_bytes())
    if found:
        problems.append(f"{rel}: contains a build or source path ({found.group(0)!r})")
    if machine == "x86_64":
        avx = avx_functions(so)
        outside = {f: n for f, n in avx.items() if not AVX_FUNCTIONS.match(f)}
        if outside:
            problems.append(f"{rel}: AVX instructions outside the per-ISA kernels: {outside}")
        if rel.startswith("turbows/_speedups"):
            kernels = {f for f in avx if AVX_FUNCTIONS.match(f)}
            for expected in ("mask_avx2", "utf8_avx2", "mask_avx512", "utf8_avx512"):
                if expected not in kernels:
                    problems.append(f"{rel}: no AVX code in {expected} (kernel missing?)")
    return problems


def check_wheel(path: Path) -> List[str]:
    problems: List[str] = []
    name = path.name
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        for rel in names:
            if rel.endswith(FORBIDDEN_SUFFIXES):
                problems.append(f"{name}: ships {rel}")
            if re.search(r"(^|/)(tests?|build|src)/", rel):
                problems.append(f"{name}: ships a test, build or source-tree path: {rel}")
        for required in ("turbows/py.typed", *STUBS):
            if required not in names:
                problems.append(f"{name}: {required} is missing")
        if "linux" not in name:
            return problems
        machine = "aarch64" if "aarch64" in name else "x86_64" if "x86_64" in name else "?"
        limit = glibc_limit(name)
        with tempfile.TemporaryDirectory() as tmp:
            for ext in EXTENSIONS:
                members = [n for n in names if n.startswith(ext + ".") and n.endswith(".so")]
                if len(members) != 1:
                    problems.append(f"{name}: expected one {ext}*.so, found {members}")
                    continue
                so = Path(zf.extract(members[0], tmp))
                found = check_extension(so, members[0], limit, machine)
                problems += [f"{name}: {p}" for p in found]
    return problems


def check_sdist(path: Path) -> List[str]:
    problems: List[str] = []
    name = path.name
    with tarfile.open(path) as tf:
        names = [n.split("/", 1)[1] for n in tf.getnames() if "/" in n]
    for required in (
        "pyproject.toml",
        "setup.py",
        "LICENSE",
        "src/turbows/_speedups.pyx",
        "src/turbows/_speedups.pxd",
        "src/turbows/asyncio/_fastio.pyx",
        "src/turbows/bench/_loadgen.pyx",
        "src/turbows/_kernels/turbows_kernels.c",
        "src/turbows/_kernels/turbows_kernels.h",
        "src/turbows/py.typed",
        *(f"src/{stub}" for stub in STUBS),
    ):
        if required not in names:
            problems.append(f"{name}: {required} is missing")
    generated = {p[:-4] + ".c" for p in names if p.endswith(".pyx")}
    for rel in names:
        if rel.endswith((".so", ".pyd", ".o", ".pyc")) or rel.startswith(("build/", "dist/")):
            problems.append(f"{name}: ships a build product: {rel}")
        if rel in generated:
            problems.append(f"{name}: ships Cython's generated {rel}")
    return problems


def main(paths: Iterable[str]) -> int:
    artifacts = [Path(p) for p in paths]
    if not artifacts:
        print("usage: check_wheel.py WHEEL_OR_SDIST...", file=sys.stderr)
        return 2
    problems: List[str] = []
    for path in artifacts:
        if path.name.endswith(".whl"):
            found = check_wheel(path)
        elif path.name.endswith(".tar.gz"):
            found = check_sdist(path)
        else:
            found = [f"{path}: neither a wheel nor an sdist"]
        print(f"{'ok  ' if not found else 'FAIL'} {path.name}")
        problems += found
    for problem in problems:
        print("  " + problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
