"""Compile every CUDA source in csrc/ with nvcc against the installed torch's headers: a compile check for machines
without a GPU or a CUDA build of torch (CI here). Objects are discarded; nothing is linked or run.

    python tools/check_cuda_compile.py [--arch 80] [--jobs 2]

Exits non-zero, printing nvcc's errors, when any file fails to compile.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A CPU-only torch wheel lacks one header that CUDA builds generate; this folder stands in for it.
SHIM_INCLUDE = Path(__file__).resolve().parent / "cuda_shim_include"


def cuda_sources() -> list[Path]:
    return sorted((ROOT / "csrc").rglob("*.cu"))


def nvcc_command(source: Path, output: Path, arch: str) -> list[str]:
    import torch.utils.cpp_extension as cpp

    includes = [ROOT / "csrc", *map(Path, cpp.include_paths()), SHIM_INCLUDE, Path(sysconfig.get_paths()["include"])]
    return [
        shutil.which("nvcc") or "nvcc",
        "-std=c++20",
        "-O3",
        f"-gencode=arch=compute_{arch},code=sm_{arch}",
        "-DFASTREC_WITH_CUDA",
        "-Xcudafe",
        "--diag_suppress=3306",  # torch's headers use C++20 bit-field initializers; nvcc's front end notes it
        *[f"-I{path}" for path in includes],
        "-c",
        str(source),
        "-o",
        str(output),
    ]


def compile_all(arch: str = "80", jobs: int = 2) -> list[tuple[Path, str]]:
    """Returns (source, nvcc output) for each file that failed; an empty list when all compiled."""
    sources = cuda_sources()
    with tempfile.TemporaryDirectory() as tmp:

        def run(source: Path) -> tuple[Path, subprocess.CompletedProcess]:
            out = Path(tmp) / (source.stem + ".o")
            return source, subprocess.run(nvcc_command(source, out, arch), capture_output=True, text=True)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(run, sources))
    return [(src, proc.stdout + proc.stderr) for src, proc in results if proc.returncode != 0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="80", help="compute capability to compile for (default 80)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("nvcc") is None:
        print("nvcc not found", file=sys.stderr)
        return 2
    failures = compile_all(args.arch, args.jobs)
    for source, log in failures:
        print(f"FAILED {source.relative_to(ROOT)}\n{log}", file=sys.stderr)
    print(f"{len(cuda_sources()) - len(failures)} of {len(cuda_sources())} CUDA sources compiled")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
