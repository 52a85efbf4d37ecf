"""The synthesis command line: the JSON contract, and one stderr line + exit 2 on bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tf_propo import image_io


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tf_propo.synthesize", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def test_gatys_run_writes_the_image_and_the_json_line(tmp_path, normalized_weights):
    out = tmp_path / "g.png"
    result = run("--method=gatys", "--size=48", "--steps=15", "--samples=2", "--seed=3",
                 f"--out={out}")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("method", "seconds", "texture_loss", "noise_texture_loss", "size", "out"):
        assert key in record
    assert record["method"] == "gatys" and record["size"] == 48
    assert record["out"] == str(out)
    assert 0 < record["texture_loss"] < 0.05 * record["noise_texture_loss"]
    assert record["diversity"] > 0
    assert image_io.read_image(out).shape == (48, 2 * 48 + 4, 3)
    assert "gatys 48px" in result.stderr  # the progress bar
    # TensorFlow is imported after the checks, still quietly (cli.import_tensorflow_quietly).
    assert "absl::InitializeLog" not in result.stderr and "oneDNN" not in result.stderr


BAD_INPUTS = {
    "negative size": (["--size=-3"], "size"),
    "size not a number": (["--size=big"], "--size=big: expected N or WIDTHxHEIGHT"),
    "size too large": (["--size=9000"], "16 to 8192"),
    "pseudo optimizer off the 16 grid": (["--method=propo", "--size=64x40"],
                                         "--size=64x40: propo makes sides that are multiples"),
    "more pixels than fit": (["--size=8192", "--samples=64"], "4295.0 Mpx of images need"),
    "a target too large to score": (["--target={big}", "--target_size=0"],
                                    "after --target_size=0"),
    "zero steps": (["--steps=0"], "steps"),
    "zero samples": (["--samples=0"], "samples"),
    "unknown method": (["--method=foo"], "method"),
    "unknown flag": (["--bogus=1"], "bogus"),
    "positional": (["extra"], "unexpected"),
    "missing target": (["--target=/nonexistent/t.png"], "no such file"),
    "not an image": (["--target={text}"], "not a PNG"),
    "output is a directory": (["--out={tmp}"], "is a directory"),
    "bad output extension": (["--out={tmp}/o.txt"], "must end in"),
    "ot without decoders": (["--method=ot", "--decoders={tmp}/none"], "no such directory"),
    "pseudo optimizer without a model": (["--method=po"], "needs --model_dir"),
    "polish of another method": (["--method=gatys", "--polish_steps=2"],
                                 "only --method=quilt and --method=ot are polished"),
    "negative polish": (["--polish_steps=-1"], "polish_steps"),
    "missing weights file": (["--vgg_weights=file:/nonexistent.npz", "--size=16"],
                             "does not exist"),
    "unknown weights source": (["--vgg_weights=vgg16", "--size=16"], "unknown VGG19"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(tmp_path, case):
    text = tmp_path / "notes.png"
    text.write_text("not an image at all\n")
    args, message = BAD_INPUTS[case]
    big = tmp_path / "big.png"
    if any("{big}" in a for a in args):  # 8192² of flat grey: a few KB of PNG
        import cv2

        cv2.imwrite(str(big), np.full((8192, 8192, 3), 128, np.uint8))
    args = [a.format(text=text, tmp=tmp_path, big=big) for a in args]
    if not any(a.startswith("--out") for a in args):
        args.append(f"--out={tmp_path}/o.png")
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(["notes.png"] + (["big.png"] if big.exists()
                                                                   else []))


def test_many_targets_in_one_run(tmp_path, normalized_weights, sample_paths):
    """A folder, a glob and a file in one --target: one process, one model load, one JSON
    line per target then a summary, outputs named after their targets in the --out folder."""
    import shutil

    folder, other = tmp_path / "in", tmp_path / "more"
    folder.mkdir()
    other.mkdir()
    for path in sample_paths[:2]:
        shutil.copy(path, folder)
    shutil.copy(sample_paths[2], other / "third.png")
    shutil.copy(sample_paths[2], other / "fourth.png")
    out = tmp_path / "out"
    result = run("--method=ot", "--size=48x32", "--polish_steps=1", "--seed=2",
                 f"--target={folder},{other}/t*.png", f"--out={out}")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    names = [os.path.basename(p) for p in sample_paths[:2]] + ["third.png"]
    assert sorted(os.listdir(out)) == sorted(names)
    assert [os.path.basename(r["out"]) for r in lines[:-1]] == sorted(names[:2]) + names[2:]
    for record in lines[:-1]:
        assert record["method"] == "ot" and record["size"] == "48x32"
        assert image_io.read_image(record["out"]).shape == (32, 48, 3)
    assert lines[-1]["targets"] == 3 and lines[-1]["out"] == str(out)
    assert "synthesize [" in result.stderr  # one progress bar over the targets
    # The texture of a target does not depend on the company it keeps.
    alone = run("--method=ot", "--size=48x32", "--polish_steps=1", "--seed=2",
                f"--target={other}/third.png", f"--out={tmp_path}/alone.png")
    assert alone.returncode == 0, alone.stderr
    np.testing.assert_array_equal(image_io.read_image(tmp_path / "alone.png"),
                                  image_io.read_image(out / "third.png"))


def test_many_targets_bad_input(tmp_path, sample_paths):
    import shutil

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(sample_paths[0], tmp_path / name / "x.png")
    cases = [
        ([f"--target={tmp_path}/a", f"--out={tmp_path}/o.png"], "--out is a folder"),
        ([f"--target={tmp_path}/a,{tmp_path}/b", f"--out={tmp_path}/o"],
         "would both be written to"),
        ([f"--target={tmp_path}/*.jpg", f"--out={tmp_path}/o"], "matches no images"),
        ([f"--target={tmp_path}/a", f"--out={tmp_path}/a"], "is the target itself"),
    ]
    for args, message in cases:
        result = run(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], (
            args, result.stderr)
        assert sorted(os.listdir(tmp_path)) == ["a", "b"]
        assert os.listdir(tmp_path / "a") == ["x.png"]


def test_default_target_is_a_bundled_sample():
    from tf_propo import synthesize

    assert os.path.exists(os.path.join(os.path.dirname(synthesize.__file__), "samples",
                                       synthesize.DEFAULT_TARGET))


def test_default_is_quilting_any_size_tileable_and_refinable(tmp_path, normalized_weights):
    from tf_propo import methods

    result = run("--samples=2", "--size=100", "--tileable", cwd=tmp_path)  # default target
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["method"] == "quilt" and record["tileable"] is True
    assert record["polish_steps"] == methods.POLISH_STEPS["quilt"]  # polished unless asked not to be
    image = image_io.read_image(tmp_path / "texture.png")
    assert image.shape == (100, 2 * 100 + 4, 3)
    # Stitched from the target's own blocks: far below noise, and samples differ.
    assert record["loss_ratio"] < 0.01 and record["diversity"] > 0
    out = tmp_path / "refined.png"
    result = run("--size=96x64", "--refine_steps=4", f"--out={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["texture_loss"] < record["refine"]["texture_loss_before"]
    assert record["size"] == "96x64" and image_io.read_image(out).shape == (64, 96, 3)
    result = run("--size=64", "--polish_steps=0", f"--out={tmp_path}/raw.png", cwd=tmp_path)
    assert result.returncode == 0
    assert json.loads(result.stdout.strip().splitlines()[-1])["polish_steps"] == 0
    result = run("--method=ot", "--tileable", "--size=40", f"--out={tmp_path}/g.png",
                 cwd=tmp_path)
    assert result.returncode == 2 and "multiples of 16" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "g.png").exists()


def test_sizes_that_cannot_fit_are_refused_per_method(monkeypatch):
    # Quilting's VGG passes go by tiles, so 4096² fits in 20 GB; the pseudo optimizers' and
    # OT's networks take the whole image and do not. Refused with the flag named, before any
    # work.
    from tf_propo import memory
    from tf_propo import synthesize
    from tf_propo.errors import UsageError

    monkeypatch.setattr(memory, "available", lambda: 20e9)
    assert synthesize.output_size("4096", "quilt", 1) == (4096, 4096)
    assert synthesize.output_size("4096x2048", "quilt", 2) == (2048, 4096)
    with pytest.raises(UsageError, match=r"--size=4096 --samples=1: .* about 27 GB, more "
                                         r"than the 20 GB free here"):
        synthesize.output_size("4096", "propo", 1)
    with pytest.raises(UsageError, match=r"about 52 GB"):
        synthesize.output_size("4096", "ot", 1)
    with pytest.raises(UsageError, match="--size=4096 --samples=2"):
        synthesize.output_size("4096", "quilt", 2)
