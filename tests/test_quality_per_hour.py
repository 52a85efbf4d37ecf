"""The quality-per-hour benchmark: its arithmetic, and one tiny end-to-end run (probe, train to
the budget, evaluate, resume without training again)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import SAMPLES
from tf_propo import data
from tf_propo.benchmarks import training_runs
from tf_propo.errors import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_parse_variants_puts_the_base_first():
    variants = training_runs.parse_variants(
        ["width 0.5=--width=0.5", " crop 64 = --crop_size=64  --batch_size=16 "])
    assert variants == [("base", []), ("width 0.5", ["--width=0.5"]),
                        ("crop 64", ["--crop_size=64", "--batch_size=16"])]


@pytest.mark.parametrize("spec", ["--width=0.5", "wide=", "=--width=0.5", "wide=width=0.5",
                                  "base=--width=0.5"])
def test_parse_variants_refuses_what_is_not_name_equals_flags(spec):
    with pytest.raises(UsageError, match="--variant"):
        training_runs.parse_variants([spec])


def test_budget_steps():
    assert training_runs.budget_steps(4.0, 4, 720) == 720
    assert training_runs.budget_steps(2.5, 16, 720) == 112  # 112.5 rounds down
    assert training_runs.budget_steps(0.01, 8, 1) == 1


def test_summarize_averages_the_rows_that_ran():
    rows = [{"status": "ok", "loss_ratio": "0.002", "dark_fraction": "0.001"},
            {"status": "ok", "loss_ratio": "0.004", "dark_fraction": "0.003"},
            {"status": "missing: propo", "loss_ratio": "", "dark_fraction": ""}]
    result = training_runs.summarize(rows)
    assert result["loss_ratio"] == pytest.approx(0.003)
    assert result["dark_percent"] == pytest.approx(0.2)
    assert "unseen_vs_real" not in result  # an exemplar evaluation has no unseen half
    held_out = [{**r, "unseen_ratio_to_real": v} for r, v in zip(rows, ("8", "12", ""))]
    assert training_runs.summarize(held_out)["unseen_vs_real"] == pytest.approx(10)
    held_out[1]["unseen_ratio_to_real"] = ""  # a texture whose halves repeat
    assert training_runs.summarize(held_out)["unseen_vs_real"] == pytest.approx(8)
    assert result["targets"] == 2
    with pytest.raises(UsageError):
        training_runs.summarize(rows[2:])


def _benchmark(*args):
    return subprocess.run([sys.executable, "-m", "tf_propo.benchmarks.quality_per_hour",
                           "--config=configs/smoke.flags", f"--targets={SAMPLES}", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_tiny_benchmark_trains_to_the_budget_and_resumes(tmp_path, normalized_weights):
    target = os.path.join(SAMPLES, "nature_potatoes.png")
    # The narrow variant also mixes crop sizes: its images are the run's own count.
    args = ["--seconds=1", "--probe_steps=2",
            "--variant=narrow=--width=0.0625 --crop_sizes=16,32",
            f"--eval_targets={target}", "--eval_size=32", "--eval_samples=2",
            f"--work_dir={tmp_path}"]
    result = _benchmark(*args)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["variant"] for r in rows] == ["base", "narrow"]
    with open(tmp_path / "plan.json") as f:
        plan = json.load(f)
    for row in rows:
        entry = plan[row["variant"]]
        assert row["steps"] == entry["steps"] == training_runs.budget_steps(
            entry["images_per_second"], entry["batch_size"], 1)
        assert 0 < row["loss_ratio"] < 10
        # The run was trained to exactly the planned steps.
        with open(tmp_path / f"{row['variant']}-{row['steps']}" / "checkpoint") as f:
            assert f"ckpt-{row['steps']}\"" in f.read()
    assert rows[0]["images"] == rows[0]["steps"] * 2  # smoke.flags' --batch_size
    assert rows[1]["images"] == data.images_seen(32, 2, [16, 32], 0, rows[1]["steps"])
    assert rows[0]["loss_vs_base"] == 1.0
    assert rows[1]["flags"] == "--width=0.0625 --crop_sizes=16,32"
    assert "| narrow | --width=0.0625 --crop_sizes=16,32 |" in result.stdout

    # Resumed with the other evaluation protocol (the base alone, to keep the test short):
    # nothing is trained again, only evaluated.
    again = _benchmark(*[a for a in args if not a.startswith("--variant")],
                       "--protocol=held_out_half")
    assert again.returncode == 0, again.stderr
    resumed = json.loads(again.stdout.strip().splitlines()[-1])
    assert all(r["unseen_vs_real"] > 0 for r in resumed) and "unseen × real" in again.stdout
    assert "tf_propo.train --flagfile=configs/smoke.flags --targets" in again.stderr
    assert "--holdout=0" not in again.stderr  # no new throughput probe: the plan is reused
    assert "train propo" not in again.stderr  # no progress bar: nothing trained again
    assert [(r["variant"], r["steps"]) for r in resumed] == [("base", rows[0]["steps"])]


def test_bad_input_is_one_line(tmp_path):
    for args in (["--variant=oops"], ["--eval_targets=/nonexistent.png"],
                 ["--config=/nonexistent.flags"]):
        result = _benchmark(*args, f"--work_dir={tmp_path / 'w'}")
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.startswith("error: ")
        assert not os.path.exists(tmp_path / "w")
