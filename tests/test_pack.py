"""tf_propo.pack and weights.pack_weights: a training run's weights and images for a host
without network (the run itself from a pack: test_train_jax)."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tf_propo import data, vgg, weights
from tests.conftest import vgg_shaped_random_weights
from tests.test_train import SMOKE

CONVS_TO_POOL2 = ("preprocess", "conv1_1", "conv1_2", "conv2_1", "conv2_2")


@pytest.fixture
def imagenet_home(tmp_path, monkeypatch):
    """A weights cache whose 'imagenet' entry holds random VGG-shaped weights (no network)."""
    home = tmp_path / "home"
    monkeypatch.setenv("TF_PROPO_HOME", str(home))
    monkeypatch.setattr(weights, "_MEMORY_CACHE", {})
    full = vgg_shaped_random_weights(seed=5)
    weights._store("imagenet", full, None, "a test")
    return home, full


def use_home(monkeypatch, home):
    monkeypatch.setenv("TF_PROPO_HOME", str(home))
    monkeypatch.setattr(weights, "_MEMORY_CACHE", {})


def test_packed_weights_hold_the_first_convolutions_float16_rounded(imagenet_home, tmp_path,
                                                                    monkeypatch):
    _, full = imagenet_home
    npz = weights.pack_weights("imagenet", tmp_path / "pack", "pool2", float16=True)
    assert os.path.getsize(npz) < 0.6 * 4 * sum(
        k.size + b.size for name, (k, b) in full.items() if name in CONVS_TO_POOL2)
    use_home(monkeypatch, tmp_path / "pack")
    packed = weights.load_weights("imagenet")
    assert tuple(packed) == CONVS_TO_POOL2
    for name in CONVS_TO_POOL2:
        for got, want in zip(packed[name], full[name]):
            np.testing.assert_array_equal(got, want.astype(np.float16).astype(np.float32))
    image = np.random.default_rng(1).random((1, 32, 32, 3)).astype(np.float32)
    from_pack = weights.pretrained_encoder(["relu1_1", "pool2"], source="imagenet")(image)
    rounded = {n: [a.astype(np.float16).astype(np.float32) for a in full[n]] for n in full}
    reference = weights.apply_weights(vgg.build_encoder(["relu1_1", "pool2"]), rounded)(image)
    for tap in ("relu1_1", "pool2"):
        np.testing.assert_array_equal(np.asarray(from_pack[tap]), np.asarray(reference[tap]))


def test_a_model_deeper_than_the_pack_is_refused_with_one_line(imagenet_home, tmp_path,
                                                               monkeypatch):
    weights.pack_weights("imagenet", tmp_path / "pack", "pool2")
    use_home(monkeypatch, tmp_path / "pack")
    with pytest.raises(weights.WeightsError, match="stop before conv3_1, which pool3 needs"):
        weights.pretrained_encoder(["relu1_1", "pool3"], source="imagenet")


def test_a_modified_pack_fails_verification(imagenet_home, tmp_path, monkeypatch):
    npz = weights.pack_weights("imagenet", tmp_path / "pack", "pool2", float16=False)
    with np.load(npz) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["conv2_1/bias"] = arrays["conv2_1/bias"] + 1e-3
    np.savez(npz, **arrays)
    use_home(monkeypatch, tmp_path / "pack")
    with pytest.raises(weights.WeightsError, match="fail verification"):
        weights.load_weights("imagenet")


def test_a_pack_claiming_the_normalized_weights_must_come_from_them(tmp_path, monkeypatch):
    """A packed 'normalized' entry is trusted only if its manifest names the pinned digest as
    its source: random weights packed under that name are refused."""
    use_home(monkeypatch, tmp_path / "home")
    weights._store("imagenet", vgg_shaped_random_weights(seed=2), None, "a test")
    weights.pack_weights("imagenet", tmp_path / "pack", "pool1")
    folder = tmp_path / "pack" / "weights"
    os.rename(folder / "imagenet.npz", folder / "normalized.npz")
    os.rename(folder / "imagenet.json", folder / "normalized.json")
    use_home(monkeypatch, tmp_path / "pack")
    with pytest.raises(weights.WeightsError, match="fail verification"):
        weights.load_weights("normalized")


def test_a_cut_with_a_gap_is_not_a_pack():
    w = vgg_shaped_random_weights()
    prefix = {n: w[n] for n in CONVS_TO_POOL2 if n != "conv2_1"}
    with pytest.raises(weights.WeightsError, match="no weights for conv2_1"):
        weights.validate(prefix, "a test", complete=False)
    with pytest.raises(weights.WeightsError, match="no weights for conv3_1"):
        weights.validate({n: w[n] for n in CONVS_TO_POOL2}, "a test")  # complete by default


def pack(*args, home):
    env = {**os.environ, "TF_PROPO_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "tf_propo.pack", f"--flagfile={SMOKE}",
                           "--vgg_weights=imagenet", *args],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def odd_targets(tmp_path):
    """Images of odd sizes and formats, one in a subfolder."""
    folder = tmp_path / "targets"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a.png": (70, 90), "b.jpg": (41, 33), "c.bmp": (64, 200),
                         "sub/d.png": (128, 97), "e.png": (80, 80)}.items():
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return folder


def test_pack_cli_writes_the_pixels_the_trainer_reads(imagenet_home, odd_targets, tmp_path):
    home, _ = imagenet_home
    out = tmp_path / "pack"
    result = pack(f"--targets={odd_targets}", "--holdout=2", "--crop_sizes=16,32",
                  "--layers=relu1_1,pool1", f"--out={out}", home=home)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["images"] == 5 and record["up_to"] == "pool1"
    assert record["weights"] == str(out / "home" / "weights" / "imagenet.npz")
    assert f"TF_PROPO_HOME={out / 'home'}" in record["command"]
    names = sorted(os.path.relpath(p, out / "targets")
                   for p in data.list_images(str(out / "targets")))
    assert names == ["a.png", "b.jpg.png", "c.bmp.png", "e.png", "sub/d.png"]
    flags_text = (out / "train.flags").read_text()
    assert f"--targets={out / 'targets'}\n" in flags_text
    assert "--crop_sizes=16,32\n" in flags_text and "--vgg_weights=imagenet\n" in flags_text
    assert "--holdout=2\n" in flags_text
    # The trainer's view of the pack equals its view of the originals, pixel for pixel, and
    # --holdout leaves out the same images.
    original, original_paths = data.load_local_images(str(odd_targets), 64, holdout=2)
    packed, packed_paths = data.load_local_images(str(out / "targets"), 64, holdout=2)
    assert [os.path.basename(p) for p in packed_paths] == [
        os.path.basename(p) if p.endswith(".png") else os.path.basename(p) + ".png"
        for p in original_paths]
    for a, b in zip(original, packed):
        assert min(b.shape[:2]) == 64
        np.testing.assert_array_equal(a, b)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


@pytest.mark.parametrize("args, message", [
    (["--targets=/nonexistent/folder"], "no such file or folder"),
    (["--targets=tfds:dtd"], "tfds datasets are not packed"),
    (["--vgg_weights=file:/tmp/vgg.npz"], "only the fetched sources"),
    (["--layers=relu1_1,pool9"], "unknown VGG19 layer"),
])
def test_pack_cli_refuses_bad_input_with_one_line(imagenet_home, odd_targets, tmp_path,
                                                  args, message):
    home, _ = imagenet_home
    out = tmp_path / "pack"
    result = pack(f"--targets={odd_targets}", f"--out={out}", *args, home=home)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not out.exists() and not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_pack_cli_refuses_a_corrupt_image_and_leaves_nothing(imagenet_home, odd_targets,
                                                            tmp_path):
    home, _ = imagenet_home
    (odd_targets / "f.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    result = pack(f"--targets={odd_targets}", f"--out={tmp_path / 'pack'}", home=home)
    lines = result.stderr.strip().splitlines()  # the progress bar, then the one error line
    assert result.returncode == 2 and lines[-1].startswith("error: ") and "f.png" in lines[-1]
    assert sum(line.startswith("error") for line in lines) == 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "pack").exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_pack_cli_will_not_overwrite(imagenet_home, odd_targets, tmp_path):
    home, _ = imagenet_home
    (tmp_path / "pack").mkdir()
    result = pack(f"--targets={odd_targets}", f"--out={tmp_path / 'pack'}", home=home)
    assert result.returncode == 2 and "exists" in result.stderr
    assert os.listdir(tmp_path / "pack") == []


@pytest.mark.parametrize("float16", [False, True])
def test_a_pack_of_the_normalized_weights_is_verified_layer_by_layer(
        normalized_weights, tmp_path, monkeypatch, float16):
    """The pack is checked against the pinned weights' layer digests from the layers it
    holds; a manifest rewritten to vouch for modified weights is not enough."""
    npz = weights.pack_weights("normalized", tmp_path / "pack", "pool1", float16=float16)
    use_home(monkeypatch, tmp_path / "pack")
    assert tuple(weights.load_weights("normalized")) == ("preprocess", "conv1_1", "conv1_2")
    with np.load(npz) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["conv1_1/kernel"] = np.zeros_like(arrays["conv1_1/kernel"])
    np.savez(npz, **arrays)
    manifest = npz[:-len(".npz")] + ".json"
    with open(manifest) as f:
        record = json.load(f)
    forged = weights.validate(weights.read_npz(npz), npz, complete=False)
    record["content_digest"] = weights.content_digest(forged)
    record["packed"]["other_layers"]["conv1_1"] = weights.layer_digests(forged)["conv1_1"]
    with open(manifest, "w") as f:
        json.dump(record, f)
    use_home(monkeypatch, tmp_path / "pack")
    with pytest.raises(weights.WeightsError, match="fail verification"):
        weights.load_weights("normalized")
