"""Benchmarks end to end on tiny settings: their arithmetic, not their timings."""

import json
import subprocess
import sys

import pytest


def run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=600)


def test_batch_benchmark_reports_textures_per_second():
    result = run("tf_propo.benchmarks.batch", "--presets=quilt_raw", "--batches=1,3",
                 "--size=32", "--repeats=2")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert [(r["preset"], r["batch"]) for r in rows] == [("quilt_raw", 1), ("quilt_raw", 3)]
    for row in rows:
        assert row["seconds"] > 0 and row["device"].startswith(("CPU", "GPU", "NVIDIA"))
        assert row["textures_per_second"] == pytest.approx(row["batch"] / row["seconds"])
    assert rows[0]["speedup"] == 1.0
    assert rows[1]["speedup"] == pytest.approx(
        rows[1]["textures_per_second"] / rows[0]["textures_per_second"])
    assert "| quilt_raw | 3 |" in result.stdout


@pytest.mark.parametrize("flag,message", [
    ("--presets=nope", "--presets: unknown nope"),
    ("--batches=0", "--batches=0: positive"),
    ("--size=40", "--size=40: propo makes sides that are multiples of 16"),
])
def test_batch_benchmark_bad_flags(flag, message):
    result = run("tf_propo.benchmarks.batch", flag)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
