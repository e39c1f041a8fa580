"""Benchmark helpers shared by `fastrec bench` and the pytest-benchmark suites in benchmarks/."""

from fastrec.bench.suite import Result, run_suite
from fastrec.bench.timing import Timing, time_interleaved

__all__ = ["Result", "Timing", "run_suite", "time_interleaved"]
