"""The extension loader, the `fastrec` command, the interleaved timing helper and the CUDA compile check."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import fastrec
from fastrec import _extension, cli
from fastrec.bench import suite, time_interleaved

ROOT = Path(__file__).resolve().parent.parent


def test_build_info_describes_this_build():
    info = _extension.build_info
    assert info.torch_version == torch.__version__
    assert "-O3" in info.flags
    assert info.native or "-march=native" not in info.flags


def test_loader_refuses_a_build_for_another_torch(monkeypatch):
    stale = types.SimpleNamespace(torch_version="1.0.0", native=False, cuda=False)
    monkeypatch.setitem(sys.modules, "fastrec._build_info", stale)
    info, reason = _extension._load()
    assert info is None
    assert "built against torch 1.0.0" in reason and torch.__version__ in reason


def test_loader_honours_disable_switch(monkeypatch):
    monkeypatch.setenv("FASTREC_DISABLE_EXTENSION", "1")
    assert _extension._load() == (None, "disabled by FASTREC_DISABLE_EXTENSION=1")


def test_reference_fallback_in_a_process_without_kernels():
    code = (
        "import torch, fastrec\n"
        "assert not fastrec.extension_available()\n"
        "e = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)\n"
        "out = fastrec.ops.fm_interaction(e)\n"
        "torch.testing.assert_close(out, fastrec.ops.reference.fm_interaction_pairwise(e))\n"
        "out.sum().backward()\n"
        "print('ok')\n"
    )
    env = {**os.environ, "FASTREC_DISABLE_EXTENSION": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_info_prints_versions_and_build(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"fastrec               {fastrec.__version__}" in out
    assert "kernels               loaded" in out
    assert "CUDA kernels" in out and "cpu capability" in out


def _small_fm_cases():
    return suite.fm_cases(batch=32, fields=5, dims=(8,))


def test_bench_prints_table_and_writes_json(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(suite, "CASES", {"fm_interaction": _small_fm_cases})
    out_file = tmp_path / "nested" / "bench.json"
    assert cli.main(["bench", "--rounds", "2", "--json", str(out_file)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("fm_interaction")]
    assert len(rows) == 6  # fwd and fwd+bwd, each against three baselines
    assert all(row.rstrip().endswith("x") for row in rows)
    payload = json.loads(out_file.read_text())
    assert {r["baseline"] for r in payload["results"]} == {"torch reference", "torch.compile reference", "naive pairwise"}
    assert all(r["speedup"] > 0 for r in payload["results"])
    assert not list(out_file.parent.glob("*.tmp"))


def test_bench_unknown_filter_fails(capsys):
    assert cli.main(["bench", "--only", "no-such-op"]) == 2


def test_time_interleaved_rotates_and_counts():
    order = []
    timings = time_interleaved(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")}, rounds=4, warmup=0, min_round_seconds=0
    )
    assert set(timings) == {"a", "b"}
    assert all(len(t.rounds) == 4 and t.median >= 0 for t in timings.values())
    calls = order[2:]  # after the one sizing call each
    assert calls[:2] == ["a", "b"] and calls[2:4] == ["b", "a"]


def test_time_interleaved_caps_rounds_for_slow_candidates():
    import time

    timings = time_interleaved({"slow": lambda: time.sleep(0.01)}, rounds=50, warmup=0, max_seconds=0.05, min_rounds=3)
    assert 3 <= len(timings["slow"].rounds) <= 6


def test_time_interleaved_rejects_bad_arguments():
    with pytest.raises(ValueError, match="no candidates"):
        time_interleaved({})
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        time_interleaved({"a": lambda: None}, rounds=0)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_cuda_sources_compile_with_nvcc():
    """No GPU here: every .cu file is compiled against torch's headers as a check (never linked or run)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_cuda_compile.py")], capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CUDA sources compiled" in proc.stdout


def test_bench_warns_on_a_busy_machine(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    assert cli.busy_machine_warning() is None
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 3.0, 3.0))
    assert "load average 3.0 on 2 cores" in cli.busy_machine_warning()
