"""The WebSocket benchmark must keep working: a short smoke run beside nginx."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support import ROOT


def test_websocket_benchmark_smoke() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.websocket", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for proxy in ("nginx", "gateway"):
        row = re.search(rf"^\| {proxy} \| ([\d,]+) \| ([\d.]+) \| ([\d.]+)x \|$", result.stdout, re.M)
        assert row is not None, result.stdout
        assert int(row.group(1).replace(",", "")) > 0
        assert re.search(rf"^{proxy}: RSS .* KiB per idle socket$", result.stdout, re.M), result.stdout
