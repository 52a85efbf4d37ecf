"""The quality benchmark's arithmetic: its summary of evaluate's rows and the tier checks."""

import pytest

from tf_propo.benchmarks import quality
from tf_propo.errors import UsageError


def _row(target, method, ratio, seconds, novel, real_novel="0.0", grid="1.0", zeros=""):
    return {"target": target, "method": method, "status": "ok",
            "unseen_ratio_reflect": str(ratio), "unseen_ratio_to_real": str(zeros),
            "seconds_per_texture": str(seconds),
            "novel_patch_fraction": str(novel), "real_novel_patch_fraction": real_novel,
            "grid_score": grid, "target_grid_score": "0.5"}


def test_parse_methods_reads_an_optional_tier():
    assert quality.parse_methods(["quilt:fast", "ot:eigh:ot", "ot:sliced", "gatys"]) == [
        ("quilt", "fast"), ("ot:eigh", "ot"), ("ot:sliced", None), ("gatys", None)]
    with pytest.raises(UsageError, match="names no method"):
        quality.parse_methods([":fast"])


def test_summary_and_tier_checks():
    rows = [_row("a.png", "quilt", 1.5, 0.4, 0.0, zeros=1.2),
            _row("b.png", "quilt", 3.0, 0.5, 0.004, zeros=2.0),
            _row("c.png", "quilt", 9.0, 0.6, 0.002, "0.002", zeros=4.0),
            _row("d.png", "quilt", 1.0, 0.5, 0.0, grid="3.0"),
            {"target": "a.png", "method": "propo", "status": "missing (no model)",
             "unseen_ratio_reflect": "", "unseen_ratio_to_real": "",
             "seconds_per_texture": "", "novel_patch_fraction": "",
             "real_novel_patch_fraction": ""}]
    summary = quality.summarize(rows, "quilt")
    # Judged through the reflection-padded VGG19; the zero-padded median is shown.
    assert summary["median"] == pytest.approx(2.25) and summary["worst"] == 9.0
    assert summary["median_zero_padded"] == pytest.approx(2.0)  # d.png has none: left out
    assert summary["worst_target"] == "c.png" and summary["targets"] == 4
    assert summary["within_2"] == 0.5 and summary["within_5"] == 0.75
    assert summary["novel_mean"] == pytest.approx(0.001) and summary["novel_worst"] == 0.004
    assert summary["seconds"] == pytest.approx(0.5)
    # The grid measure over the seen half's: d.png's 3.0 - 0.5 is over GRID_EXCESS.
    assert summary["grid_worst"] == 2.5 and summary["grid_worst_target"] == "d.png"
    assert quality.summarize(rows, "propo") is None
    checks = quality.verdict(summary, "fast")
    assert checks == {"seconds": True, "median": False, "80% <= 5": False, "novel": False,
                      "grid": False}
    assert quality.verdict(summary, "ot") == {"seconds": True, "median": True, "grid": False}
    summary["tier"], summary["checks"] = "fast", checks
    line = quality.table([summary]).splitlines()[-1]
    assert line == ("| quilt | fast | 2.25 | 2 | 9 (c.png) | 50% | 75% | 0.10 (0.40) "
                    "| +2.5 (d.png) | 0.5 | no: median, 80% <= 5, novel, grid |")
    rows[3]["grid_score"] = "2.0"  # 1.5 over the seen half's: no grid
    assert quality.verdict(quality.summarize(rows, "quilt"), "ot")["grid"]
    for row in rows:  # a CSV of an evaluate without the judged ratio: nothing to judge
        row.pop("unseen_ratio_reflect")
    assert quality.summarize(rows, "quilt") is None


def test_importing_the_benchmark_defines_no_flags():
    """The tests import it beside the apps, whose flags (--size, --out) it must not clash
    with in one process."""
    import subprocess
    import sys

    code = ("from absl import flags; import tf_propo.benchmarks.quality; "
            "print(sorted(n for n in ('size', 'out', 'targets', 'gatys_steps') "
            "if n in flags.FLAGS))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_the_evaluate_command_passes_what_is_asked_and_evaluate_knows_every_flag():
    import subprocess
    import sys

    plain = quality.evaluate_command(["a.png", "b.png"], ["quilt", "ot:eigh"], 2, 256, 100,
                                     "auto", "out")
    assert plain[1:3] == ["-m", "tf_propo.evaluate"]
    assert "--targets=a.png,b.png" in plain and "--methods=quilt,ot:eigh" in plain
    assert not any(a.startswith(("--polish_steps", "--decoders")) for a in plain)
    full = quality.evaluate_command(["a.png"], ["ot:sliced"], 1, 128, 10, "float32", "out",
                                    decoders="dec", polish_steps=0)
    assert "--polish_steps=0" in full and "--decoders=dec" in full and "--size=128" in full
    help_text = subprocess.run([sys.executable, "-m", "tf_propo.evaluate", "--helpfull"],
                               capture_output=True, text=True, timeout=120).stdout
    for argument in full[3:]:
        assert f"--{argument[2:].split('=')[0]}:" in help_text, argument
