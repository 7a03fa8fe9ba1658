"""The benchmark itself must keep working: a short smoke run of every server it compares."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT


def test_benchmark_smoke() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--connections", "16"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    for target in ("nginx", "gateway", "asgiproxy", "fastapi-proxy-lib", "gateway-503", "503-replica", "direct"):
        assert f"| {target} | 16 |" in table
    # No target may fail requests, whatever its speed on a busy machine.
    for line in table.splitlines():
        if line.startswith("| ") and not line.startswith("| target") and "---" not in line:
            assert line.rstrip(" |").endswith("| 0"), line
    assert "store reads in" in table and "RSS after" in table
