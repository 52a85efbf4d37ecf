"""The pretrained ProPO bundled with the package: --method=propo without a model uses it, it
makes textures far below noise on real weights, and a missing or modified bundle is refused."""

import json
import os
import shutil

import pytest

from tf_propo import methods, model_dir
from tf_propo.errors import UsageError
from tests.test_synthesize_cli import run


def test_synthesize_propo_without_a_model_uses_the_bundled_one(tmp_path, normalized_weights):
    result = run("--method=propo", "--size=128", "--samples=2", cwd=tmp_path)  # default --out
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["method"] == "propo"
    assert record["model_dir"] == os.path.abspath(methods.bundled_propo())
    assert os.path.exists(tmp_path / "texture.png")
    # Measured 7.7e-4 at 128² (1.8e-4 at 256²); uniform noise is 1. The stages descend.
    assert record["loss_ratio"] < 0.01
    stages = record["stages"]
    assert len(stages) == 6 and stages[-1] < stages[1] < stages[0]
    # Any shape on the 16-px grid, tileable: the same model run with circular padding.
    result = run("--method=propo", "--size=96x64", "--tileable", "--out=tile.png",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["size"] == "96x64" and record["loss_ratio"] < 0.05
    from tf_propo import image_io

    assert image_io.read_image(tmp_path / "tile.png").shape == (64, 96, 3)


def test_the_bundle_is_the_pinned_model():
    path = methods.bundled_propo()
    config = model_dir.load_config(path)
    assert config["weights_sha256"] == methods.BUNDLED_PROPO_SHA256
    assert config["mode"] == "propo" and config["stages"] == 5
    assert os.path.getsize(os.path.join(path, model_dir.COMPACT_WEIGHTS)) < 6e6
    # Trained with a held-out split: the evaluation in docs/results uses only those targets.
    assert "nature_rock009.png" in config["held_out"] and config["holdout"] == 5


def test_modified_or_missing_bundle_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "tf_propo"
    shutil.copytree(methods.bundled_propo(), fake / "pretrained" / "propo",
                    ignore=shutil.ignore_patterns("weights.npz"))
    monkeypatch.setattr(methods, "__file__", str(fake / "methods.py"))
    config = fake / "pretrained" / "propo" / "config.json"
    config.write_text(config.read_text().replace(methods.BUNDLED_PROPO_SHA256, "0" * 64))
    with pytest.raises(UsageError, match="modified"):
        methods.load_pseudo_optimizer(None, "propo")
    config.unlink()
    with pytest.raises(UsageError, match="no bundled pretrained ProPO"):
        methods.load_pseudo_optimizer(None, "propo")


def test_export_of_propo_is_the_bundled_model_and_reproduces_it(tmp_path):
    """--method=propo without --model_dir: the bundled ProPO. Its compact re-export is
    bit-identical (float16 weights survive the float32 round trip), so the pinned hash names
    it."""
    import subprocess
    import sys

    out = tmp_path / "again"
    result = subprocess.run([sys.executable, "-m", "tf_propo.export", "--method=propo",
                             "--format=compact", f"--out={out}"], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["model_dir"] == os.path.abspath(methods.bundled_propo())
    assert model_dir.load_config(str(out))["weights_sha256"] == methods.BUNDLED_PROPO_SHA256


def test_refine_steps_polish_the_bundled_propo_with_gatys(tmp_path, normalized_weights):
    out = tmp_path / "refined.png"
    result = run("--method=propo", "--size=64", "--refine_steps=5", "--seed=2", f"--out={out}")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    refine = record["refine"]
    assert refine["steps"] == 5 and refine["seconds"] > 0
    # The fast result's loss is the last stage's; five L-BFGS steps from it lower it.
    assert refine["texture_loss_before"] == pytest.approx(record["stages"][-1], rel=1e-5)
    assert record["texture_loss"] < 0.8 * refine["texture_loss_before"]
    assert out.exists()


def test_refine_steps_with_gatys_is_refused(tmp_path):
    out = tmp_path / "g.png"
    result = run("--method=gatys", "--refine_steps=3", f"--out={out}")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--refine_steps" in result.stderr
    assert not out.exists()
