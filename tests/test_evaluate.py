"""The evaluation command at a tiny size, so it cannot rot: every method, a missing one,
report.md, results.csv and the grids."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import (DECODERS_CONFIG, PROPO_CONFIG, SAMPLES, make_model_dir,
                            smooth_texture)
from tf_propo import image_io


def evaluate(*args):
    return subprocess.run([sys.executable, "-m", "tf_propo.evaluate", *args],
                          capture_output=True, text=True, timeout=900)


def test_tiny_evaluation(tmp_path, normalized_weights):
    propo = make_model_dir(tmp_path / "propo", PROPO_CONFIG)
    decoders = make_model_dir(tmp_path / "decoders", DECODERS_CONFIG)
    out = tmp_path / "eval"
    targets = [os.path.join(SAMPLES, "nature_potatoes.png"),
               os.path.join(SAMPLES, "nature_jungle001.png")]
    result = evaluate(f"--targets={','.join(targets)}",
                      "--methods=gatys,propo,adapo,ot:eigh,propo+2",
                      f"--model_dirs=propo={propo}",
                      f"--decoders={decoders}", "--samples=2", "--size=64",
                      "--gatys_steps=3", f"--out={out}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["rows"] == 10
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10
    by_method = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    assert all(r["status"].startswith("missing") and "adapo" in r["status"]
               for r in by_method["adapo"])
    for method in ("gatys", "propo", "ot:eigh", "propo+2"):
        for row in by_method[method]:
            assert row["status"] == "ok"
            assert 0 < float(row["loss_ratio"]) and float(row["diversity"]) > 0
            assert float(row["seconds_per_texture"]) > 0 and float(row["peak_memory_mb"]) > 50
            assert 0 <= float(row["dark_fraction"]) <= 1
            assert 0 <= float(row["target_dark_fraction"]) < 0.01
            assert float(row["texture_loss"]) / float(row["noise_texture_loss"]) \
                == float(row["loss_ratio"])
    # Two Gatys steps from ProPO's result (same noise, same model) lower its loss, and cost.
    for fast, refined in zip(by_method["propo"], by_method["propo+2"]):
        assert float(refined["texture_loss"]) < float(fast["texture_loss"])
        assert float(refined["seconds_per_texture"]) > float(fast["seconds_per_texture"])
    report = (out / "report.md").read_text()
    assert "| gatys | 2 |" in report and "| propo | 2 |" in report and "| ot:eigh | 2 |" in report
    # The loss column is the mean texture loss in the authors' units (the paper's figure).
    summary = json.loads(result.stdout.strip().splitlines()[-1])["summary"]
    for method in ("gatys", "propo", "ot:eigh", "propo+2"):
        mean = np.mean([float(r["texture_loss"]) for r in by_method[method]])
        assert summary[method]["texture_loss"] == pytest.approx(mean, rel=1e-6)
        assert f"| {method} | 2 | {summary[method]['texture_loss']:.4g} |" in report
    assert "adapo: missing" in report and "dark %" in report
    for target in targets:
        name = os.path.splitext(os.path.basename(target))[0]
        grid = image_io.read_image(str(out / "grids" / f"{name}.png"))
        # 4 methods ran: 4 rows of 64 px (+ 4 px gaps); target + 2 samples per row.
        assert grid.shape[0] == 4 * 64 + 3 * 4 and grid.shape[1] == 3 * 64 + 2 * 4


def test_precision_applies_to_the_fast_methods_only(tmp_path, normalized_weights):
    propo = make_model_dir(tmp_path / "propo", PROPO_CONFIG)
    target = os.path.join(SAMPLES, "nature_potatoes.png")
    rows = {}
    for policy in ("float32", "mixed_bfloat16"):
        out = tmp_path / policy
        result = evaluate(f"--targets={target}", "--methods=gatys,propo",
                          f"--model_dirs=propo={propo}", "--samples=1", "--size=32",
                          "--gatys_steps=2", f"--precision={policy}", f"--out={out}")
        assert result.returncode == 0, result.stderr
        with open(out / "results.csv") as f:
            rows[policy] = {r["method"]: r for r in csv.DictReader(f)}
    assert rows["mixed_bfloat16"]["propo"]["precision"] == "mixed_bfloat16"
    assert rows["mixed_bfloat16"]["gatys"]["precision"] == "float32"
    assert rows["float32"]["propo"]["precision"] == "float32"
    # Gatys is the same float32 run either way; ProPO's bfloat16 texture is close to, not
    # the same as, its float32 one (same noise, same weights).
    gatys = [rows[p]["gatys"]["texture_loss"] for p in ("mixed_bfloat16", "float32")]
    assert gatys[0] == gatys[1]
    bf16, f32 = (float(rows[p]["propo"]["texture_loss"]) for p in ("mixed_bfloat16", "float32"))
    assert bf16 != f32 and abs(bf16 - f32) < 0.2 * f32


def test_split_halves_cuts_across_the_long_side():
    from tf_propo.metrics import split_halves

    square = np.arange(4 * 4 * 3).reshape(4, 4, 3)
    seen, unseen = split_halves(square)
    np.testing.assert_array_equal(seen, square[:, :2])
    np.testing.assert_array_equal(unseen, square[:, 2:])
    tall = np.zeros((7, 3, 3))
    tall[4:] = 1
    seen, unseen = split_halves(tall)  # the odd middle row is dropped
    assert seen.shape == unseen.shape == (3, 3, 3) and seen.max() == 0 and unseen.min() == 1
    wide = np.zeros((2, 6, 3))
    assert [h.shape for h in split_halves(wide)] == [(2, 3, 3), (2, 3, 3)]


def test_halves_repeat_only_for_copies():
    from tf_propo.metrics import halves_repeat

    rng = np.random.default_rng(0)
    half = rng.uniform(0, 1, (16, 8, 3))
    assert halves_repeat(half, half + 0.5 / 255)       # a copy, resampled
    assert not halves_repeat(half, rng.uniform(0, 1, (16, 8, 3)))
    assert not halves_repeat(half, half[::-1])         # the same pixels, elsewhere


def test_tileable_textures_are_evaluated_with_their_seams(tmp_path, normalized_weights):
    out = tmp_path / "eval"
    result = evaluate(f"--targets={os.path.join(SAMPLES, 'material_metall006.png')}",
                      "--methods=quilt", "--tileable", "--samples=2", "--size=96",
                      "--target_size=128", f"--out={out}")
    assert result.returncode == 0, result.stderr
    with open(out / "results.csv") as f:
        (row,) = list(csv.DictReader(f))
    # The quilt of this sample has a seam ratio of 3.2 untiled (tests/test_quilting.py).
    assert row["status"] == "ok" and float(row["seam_ratio"]) < 1.5


def test_held_out_half_protocol(tmp_path, normalized_weights):
    """The methods see the left half; the right half, which none saw, scores them beside the
    left half itself. Gatys copies the seen half's statistics: it fits that half far better than
    the unseen one, and scores about what the real seen half scores on the unseen one."""
    from tf_propo import metrics

    propo = make_model_dir(tmp_path / "propo", PROPO_CONFIG)
    target = os.path.join(SAMPLES, "nature_potatoes.png")
    # A tiled texture whose halves are copies: nothing of it is unseen.
    tile = image_io.resize_short_edge(image_io.read_image(target), 64)[:, :32]
    tiled = str(tmp_path / "tiled.png")
    image_io.write_image(tiled, np.concatenate([tile, tile], axis=1))
    out = tmp_path / "eval"
    result = evaluate(f"--targets={target},{tiled}", "--methods=gatys,propo",
                      f"--model_dirs=propo={propo}", "--samples=1", "--size=32",
                      "--target_size=64", "--gatys_steps=20", "--protocol=held_out_half",
                      f"--out={out}")
    assert result.returncode == 0, result.stderr
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(r["status"] == "ok" for r in rows)
    assert all(r["unseen_ratio_to_real"] == "" for r in rows if r["target"] == "tiled.png")
    rows = {r["method"]: r for r in rows if r["target"] == "nature_potatoes.png"}
    whole = image_io.resize_short_edge(image_io.read_image(target), 64)
    seen, unseen = metrics.split_halves(whole)
    real = float(metrics.TextureMetrics(unseen).texture_loss(seen)[0])
    # The reflection-padded view: other statistics, the same kind of ratio.
    real_reflect = float(metrics.TextureMetrics(unseen, padding="reflect").texture_loss(seen)[0])
    assert real_reflect > 0 and abs(real_reflect / real - 1) > 1e-3
    for row in rows.values():
        assert float(row["real_unseen_texture_loss"]) == pytest.approx(real, rel=1e-4)
        assert 0 < float(row["unseen_ratio_reflect"]) != float(row["unseen_ratio_to_real"])
        assert float(row["unseen_ratio_to_real"]) == pytest.approx(
            float(row["unseen_texture_loss"]) / real, rel=1e-4)
    gatys = rows["gatys"]
    assert float(gatys["texture_loss"]) < 0.7 * float(gatys["unseen_texture_loss"])
    assert 0.5 < float(gatys["unseen_ratio_to_real"]) < 2
    report = (out / "report.md").read_text()
    assert "held_out_half" in report and "unseen × real |" in report
    assert "copies of each other, so nothing is unseen): tiled.png." in report
    summary = json.loads(result.stdout.strip().splitlines()[-1])["summary"]
    assert summary["gatys"]["unseen_ratio_to_real"] == pytest.approx(
        float(gatys["unseen_ratio_to_real"]))  # the tiled target is left out of the mean
    # One target left: its ratio is also the ratio of the mean losses.
    assert summary["gatys"]["unseen_means_to_real"] == pytest.approx(
        float(gatys["unseen_ratio_to_real"]), rel=1e-6)
    assert "unseen × real | of means |" in report
    grid = image_io.read_image(str(out / "grids" / "nature_potatoes.png"))
    assert grid.shape == (2 * 32 + 4, 2 * 32 + 4, 3)  # the whole target, then the sample


def test_report_means_of_ratios_and_ratios_of_means(tmp_path):
    """unseen × real weighs every target alike; 'of means' is the ratio of the mean losses,
    as the paper aggregates, which a target with large losses dominates."""
    from tf_propo.report import write_report

    def row(target, loss, unseen, real, novel, real_novel, grid=1.0, reflect=None):
        return {"target": target, "method": "propo", "status": "ok", "texture_loss": loss,
                "loss_ratio": loss / 1e6, "diversity": 1.0, "seconds_per_texture": 0.5,
                "peak_memory_mb": 100.0, "dark_fraction": 0.0, "target_dark_fraction": 0.0,
                "novel_patch_fraction": novel, "real_novel_patch_fraction": real_novel,
                "grid_score": grid, "target_grid_score": 0.5,
                "unseen_texture_loss": unseen, "real_unseen_texture_loss": real,
                "unseen_ratio_to_real": unseen / real, "unseen_ratio_reflect": reflect}

    rows = [row("a.png", 100.0, 40.0, 10.0, 0.05, 0.01, reflect=1.5),
            row("b.png", 3000.0, 2000.0, 1000.0, 0.003, 0.0, reflect=3.0),
            row("c.png", 10.0, 10.0, 1.0, 0.0, 0.0, grid=13.0)]
    summary = write_report(str(tmp_path / "report.md"), rows[:2], "cmd")["propo"]
    assert summary["texture_loss"] == pytest.approx(1550.0)
    assert summary["unseen_ratio_to_real"] == pytest.approx((4.0 + 2.0) / 2)
    assert summary["unseen_means_to_real"] == pytest.approx(1020.0 / 505.0)
    report = (tmp_path / "report.md").read_text()
    assert "| propo | 2 | 1550 | 0.00155 |" in report and "| 3 | 2.02 |" in report
    # Median and worst over targets; the blob measure net of the real half's own share.
    summary = write_report(str(tmp_path / "report.md"), rows, "cmd")["propo"]
    assert summary["unseen_ratio_median"] == 4.0 and summary["unseen_ratio_worst"] == 10.0
    assert summary["novel_patch_excess"] == pytest.approx((0.04 + 0.003 + 0.0) / 3)
    report = (tmp_path / "report.md").read_text()
    assert summary["grid_score"] == pytest.approx(5.0)
    # The reflection-padded median over the targets that have one (c.png has none).
    assert summary["unseen_ratio_reflect_median"] == pytest.approx(2.25)
    assert "| 1.43 | 5 (0.5) | 5.33 | 2.03 | 4 | 10 | 2.25 |" in report
    assert ("| a.png | propo | 0.0001 | 1.0 | 0.5 | 100 | 0.00 (0.00) | 4.00 | 1 (0.5) | 4 |"
            in report)


def test_bad_evaluation_input(tmp_path):
    cases = [
        (["--targets=/nonexistent.png"], "no such file"),
        ([f"--targets={SAMPLES}", "--methods=magic"], "unknown method"),
        ([f"--targets={SAMPLES}", "--methods=ot:fast"], "strategy"),
        ([f"--targets={SAMPLES}", "--methods=quilt:eigh"], "quilt :graph"),
        ([f"--targets={SAMPLES}", "--methods=propo+x"], "positive number"),
        ([f"--targets={SAMPLES}", "--methods=gatys+5"], "--gatys_steps"),
        ([f"--targets={SAMPLES}", "--model_dirs=propo"], "propo=DIR"),
        ([f"--targets={SAMPLES}", "--size=40"], "multiple of 16"),
        ([f"--targets={SAMPLES}", "--precision=float8"], "--precision"),
        ([f"--targets={SAMPLES}", "--protocol=halves"], "--protocol"),
        ([f"--targets={SAMPLES}", "--size=100000"], "size"),
        ([f"--targets={SAMPLES}", "--size=8192", "--samples=64"], "Mpx of images need"),
    ]
    for args, message in cases:
        result = evaluate(*args, f"--out={tmp_path / 'eval'}")
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)
        assert not (tmp_path / "eval").exists()


def test_dark_fraction_counts_near_black_pixels():
    from tf_propo import metrics

    images = np.full((2, 10, 10, 3), 0.5, np.float32)
    images[0, :3, :4] = 0.0                  # 12 black pixels
    images[1, 0, 0] = (0.01, 0.02, 0.03)     # dark: brightest channel 0.03 < 10/255
    images[1, 0, 1] = (0.0, 0.0, 0.2)        # not dark: one bright channel
    assert metrics.dark_fraction(images) == 13 / 200
    assert metrics.dark_fraction(images[1]) == 1 / 100


def _histogram_matched(image, reference):
    """Each channel of `image` given the values of `reference` of the same rank: the
    strongest per-channel pixel histogram match."""
    out = np.empty_like(image)
    for c in range(3):
        order = np.argsort(image[..., c], axis=None)
        values = np.sort(reference[..., c], axis=None)
        flat = np.empty(image[..., c].size, image.dtype)
        flat[order] = values[np.linspace(0, values.size - 1, flat.size).round().astype(int)]
        out[..., c] = flat.reshape(image.shape[:2])
    return out


def test_novel_patch_fraction_is_a_brute_force_nearest_mean_colour():
    from tf_propo import metrics

    exemplar = smooth_texture(0, 40)
    images = np.stack([smooth_texture(1, 48), smooth_texture(2, 48)])
    images[1, :20, :20] = (0.9, 0.1, 0.1)
    patch, distance = 8, 0.05
    windows = np.array([exemplar[y:y + patch, x:x + patch].astype(np.float64).mean((0, 1))
                        for y in range(40 - patch + 1) for x in range(40 - patch + 1)])
    novel = [np.min(np.linalg.norm(windows - image[y:y + patch, x:x + patch]
                                   .astype(np.float64).mean((0, 1)), axis=1)) > distance
             for image in images for y in range(0, 48, patch) for x in range(0, 48, patch)]
    assert 0 < np.mean(novel) < 1
    assert metrics.novel_patch_fraction(images, exemplar, patch, distance) == np.mean(novel)


def test_a_blob_counts_as_novel_patches_even_after_a_histogram_match():
    from tf_propo import metrics

    exemplar, sample = smooth_texture(0), smooth_texture(1)
    assert metrics.novel_patch_fraction(sample, exemplar) == 0  # a real sample: none
    blobbed = sample.copy()
    blobbed[40:80, 50:90] = 0.0  # 40 x 40 px: covers at least 4 of the 64 patches
    assert metrics.novel_patch_fraction(blobbed, exemplar) >= 4 / 64
    matched = _histogram_matched(blobbed, exemplar)
    assert metrics.dark_fraction(matched) == 0  # dark % is fooled by the match ...
    assert metrics.novel_patch_fraction(matched, exemplar) >= 4 / 64  # ... this is not
