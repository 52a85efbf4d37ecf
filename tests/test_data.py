"""The training data pipeline: shapes, determinism and resuming, bad folders, tfds."""

import os

import numpy as np
import pytest

from tf_propo import data
from tf_propo.errors import UsageError
from tests.conftest import SAMPLES


def take(dataset, n):
    it = iter(dataset)
    return [{k: v.numpy() for k, v in next(it).items()} for _ in range(n)]


def test_batches_shapes_and_ranges():
    [batch] = take(data.texture_dataset(SAMPLES, 32, 3, seed=0, resize=64), 1)
    assert batch["target"].shape == (3, 32, 32, 3) and batch["pre"].shape == (3, 32, 32, 3)
    assert 0 <= batch["target"].min() and batch["target"].max() <= 1
    assert -1 <= batch["pre"].min() and batch["pre"].max() <= 1
    assert batch["target"].std() > 0.02


def test_order_is_a_function_of_seed_and_index():
    a = take(data.texture_dataset(SAMPLES, 32, 2, seed=4, resize=64), 4)
    b = take(data.texture_dataset(SAMPLES, 32, 2, seed=4, resize=64), 4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["target"], y["target"])
        np.testing.assert_array_equal(x["pre"], y["pre"])
    resumed = take(data.texture_dataset(SAMPLES, 32, 2, seed=4, resize=64, start=4), 2)
    for x, y in zip(a[2:], resumed):
        np.testing.assert_array_equal(x["target"], y["target"])
        np.testing.assert_array_equal(x["pre"], y["pre"])
    other = take(data.texture_dataset(SAMPLES, 32, 2, seed=5, resize=64), 1)[0]
    assert not np.array_equal(other["pre"], a[0]["pre"])


def test_single_image_and_bad_sources(tmp_path):
    single = take(data.texture_dataset(f"{SAMPLES}/nature_jungle001.png", 16, 2, resize=32),
                  1)[0]
    assert single["target"].shape == (2, 16, 16, 3)
    with pytest.raises(UsageError, match="no .* images in that folder"):
        data.texture_dataset(str(tmp_path), 32, 2)
    with pytest.raises(UsageError, match="no such file or folder"):
        data.texture_dataset(str(tmp_path / "missing"), 32, 2)
    with pytest.raises(UsageError, match="larger than"):
        data.texture_dataset(SAMPLES, 128, 2, resize=64)
    with pytest.raises(UsageError, match="multiple of 16"):
        data.texture_dataset(SAMPLES, 30, 2)


def test_tfds_source_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        [batch] = take(data.texture_dataset("tfds:dtd", 32, 2, resize=48), 1)
    assert batch["target"].shape == (2, 32, 32, 3)
    with pytest.raises(UsageError, match="tfds:no_such_dataset"):
        data.texture_dataset("tfds:no_such_dataset", 32, 2)


def test_numpy_batch_is_a_function_of_seed_and_step_and_crops_the_images():
    images = [np.arange(40 * 50 * 3, dtype=np.uint8).reshape(40, 50, 3),
              np.full((36, 36, 3), 200, np.uint8)]
    a = data.numpy_batch(images, 32, 4, seed=1, step=7)
    b = data.numpy_batch(images, 32, 4, seed=1, step=7)
    c = data.numpy_batch(images, 32, 4, seed=1, step=8)
    for key in ("target", "pre"):
        np.testing.assert_array_equal(a[key], b[key])
        assert a[key].shape == (4, 32, 32, 3) and a[key].dtype == np.float32
        assert not np.array_equal(a[key], c[key])
    assert -1 <= a["pre"].min() and a["pre"].max() <= 1
    # Every target is a (possibly mirrored) window of one of the images.
    for crop in np.concatenate([a["target"], c["target"]]):
        crop = np.round(crop * 255).astype(np.uint8)
        found = any(np.array_equal(window, crop) or np.array_equal(window[:, ::-1], crop)
                    for image in images
                    for top in range(image.shape[0] - 31) for left in range(image.shape[1] - 31)
                    for window in [image[top:top + 32, left:left + 32]])
        assert found


def test_local_training_images_refuses_small_images_and_bad_crops():
    with pytest.raises(UsageError, match="multiple of 16"):
        data.local_training_images(SAMPLES, 40, 64)
    with pytest.raises(UsageError, match="larger than"):
        data.local_training_images(SAMPLES, 80, 64)


def test_image_paths_and_the_images_a_model_never_saw(tmp_path):
    folder = tmp_path / "textures"
    folder.mkdir()
    for name in ("a.png", "b.jpg", "c.png", "notes.txt"):
        (folder / name).write_bytes(b"")
    elsewhere = tmp_path / "b.png"
    elsewhere.write_bytes(b"")
    paths = data.image_paths([str(folder), str(elsewhere)])
    assert [os.path.basename(p) for p in paths] == ["a.png", "b.jpg", "c.png", "b.png"]
    for specs, message in (([str(tmp_path / "nope")], "no such file"), ([], "is required"),
                           ([str(tmp_path / "empty")], "no images")):
        (tmp_path / "empty").mkdir(exist_ok=True)
        with pytest.raises(UsageError, match=message):
            data.image_paths(specs, flag="--targets")

    trained = {"targets": str(folder), "held_out": ["c.png"]}
    # Only the held-out image of the training folder is unseen; b.png elsewhere is another
    # image, a.png and b.jpg were trained on.
    assert [os.path.basename(p) for p in data.unseen_by(trained, paths)] == ["c.png", "b.png"]
    assert data.unseen_by({"targets": str(folder)}, paths) == [str(elsewhere)]
    assert data.unseen_by({"targets": str(tmp_path / "gone")}, paths) == paths


def test_step_crop_mixes_the_sizes_at_about_the_same_pixels_per_step():
    assert data.step_crop(96, 8, [], seed=0, step=5) == (96, 8)
    plan = [data.step_crop(96, 8, [48, 96, 192], seed=3, step=s) for s in range(300)]
    assert plan == [data.step_crop(96, 8, [48, 96, 192], seed=3, step=s) for s in range(300)]
    assert plan != [data.step_crop(96, 8, [48, 96, 192], seed=4, step=s) for s in range(300)]
    assert dict(plan) == {48: 32, 96: 8, 192: 2}  # 8 * (96 / s)², every size drawn
    counts = [sum(size == s for size, _ in plan) for s in (48, 96, 192)]
    assert min(counts) > 60  # uniform: 100 each expected, 60 is ~5 standard deviations off
    assert data.step_crop(32, 1, [256], seed=0, step=0) == (256, 1)  # never an empty batch


def test_images_seen_counts_the_crops_of_every_step():
    images = [np.zeros((64, 64, 3), np.uint8)]
    seen = sum(len(data.step_batch(images, 32, 2, [16, 32, 48], 5, s)["target"])
               for s in range(7))
    assert data.images_seen(32, 2, [16, 32, 48], 5, 7) == seen
    assert data.images_seen(32, 2, [], 5, 7) == 14
    assert data.images_seen(32, 2, [16, 32, 48], 5, 0) == 0
