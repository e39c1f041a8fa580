"""The `fastrec` command: `fastrec info` (versions, build, CPU) and `fastrec bench` (the quick benchmark suite)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

import fastrec
from fastrec import _extension
from fastrec._atomic import write_text_atomically
from fastrec.nn._huge_pages import huge_pages_status


def _package_version(name: str) -> str:
    try:
        return importlib.import_module(name).__version__
    except ImportError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def info_lines() -> list[tuple[str, str]]:
    """(label, value) rows printed by `fastrec info`."""
    build = _extension.build_info
    cpu_features = [name for name, has in (("AVX2", torch.cpu._is_avx2_supported()),
                                           ("AVX512", torch.cpu._is_avx512_supported())) if has]
    rows = [
        ("fastrec", fastrec.__version__),
        ("python", platform.python_version()),
        ("torch", f"{torch.__version__} (CUDA {torch.version.cuda or 'none'})"),
        *((name, _package_version(name)) for name in ("numpy", "scipy", "numba", "faiss")),
        ("kernels", "loaded" if build else f"NOT loaded, reference ops in use: {_extension.extension_error}"),
    ]
    if build:
        rows += [
            ("  compiler", build.compiler),
            ("  flags", build.flags + (" (FASTREC_NATIVE)" if build.native else "")),
            ("  built for torch", build.torch_version),
            ("  CUDA kernels", "built" if build.cuda else "not built (CUDA tensors use the reference ops)"),
        ]
    rows += [
        ("cpu", f"{_cpu_model()}, {os.cpu_count()} logical cores, features: {' '.join(cpu_features) or 'none'}"),
        ("torch cpu capability", torch.backends.cpu.get_cpu_capability()),
        ("threads", f"torch {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"),
        ("embedding huge pages", huge_pages_status()),
        ("cuda device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"),
    ]
    return rows


def cmd_info(args: argparse.Namespace) -> int:
    rows = info_lines()
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


def format_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def busy_machine_warning() -> str | None:
    """A warning when other processes already keep the cores busy: timings then measure the contention."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    cores = os.cpu_count() or 1
    if load < 0.5 * cores:
        return None
    return (f"warning: load average {load:.1f} on {cores} cores before the run: timings are unreliable. On a shared "
            "machine, OpenMP threads that spin while waiting slow multi-threaded kernels down; "
            "OMP_WAIT_POLICY=PASSIVE avoids that.")


def cmd_bench(args: argparse.Namespace) -> int:
    from fastrec.bench import run_suite

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"fastrec {fastrec.__version__}, torch {torch.__version__}, {_cpu_model()}, "
          f"{torch.get_num_threads()} threads, kernels {'loaded' if _extension.is_available() else 'NOT loaded'}")
    print(f"medians of up to {args.rounds} interleaved rounds (fewer for slow baselines); speedup = baseline ms / fastrec ms", flush=True)
    warning = busy_machine_warning()
    if warning:
        print(warning, file=sys.stderr, flush=True)
    results = run_suite(only=args.only, rounds=args.rounds,
                        progress=lambda msg: print(f"  timing {msg}", file=sys.stderr, flush=True))
    if not results:
        print(f"no benchmark matches --only {args.only!r}", file=sys.stderr)
        return 2
    rows = [(r.op, r.mode, r.shape, r.baseline, f"{r.baseline_ms:.3f}", f"{r.fastrec_ms:.3f}", f"{r.speedup:.2f}x")
            for r in results]
    print(format_table(rows, ("op", "pass", "shape", "baseline", "baseline ms", "fastrec ms", "speedup")))
    if args.json is not None:
        payload = {"info": dict(info_lines()), "load_average": os.getloadavg()[0],
                   "results": [{**vars(r), "speedup": r.speedup} for r in results]}
        write_text_atomically(args.json, json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastrec", description="fastrec: fast recommender-system kernels for PyTorch")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, build configuration, CPU features").set_defaults(func=cmd_info)
    bench = sub.add_parser("bench", help="quick benchmark suite: fastrec vs the torch reference and common baselines")
    bench.add_argument("--only", help="run only ops whose name contains this text")
    bench.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds per case (default 15)")
    bench.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, usually all cores)")
    bench.add_argument("--json", type=Path, help="also write the results and machine info to this JSON file")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
