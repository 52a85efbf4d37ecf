"""Training data: target crops and start noise as a tf.data pipeline.

Sources (`--targets`): one image file, a folder of images (recursively), or `tfds:NAME` for a
tensorflow-datasets dataset (e.g. tfds:dtd; its `image` feature, split `train`). Images are
resized so the short edge is `resize` px (the authors' 256), then each sample is a random
`crop_size` crop, randomly flipped left-right (the authors' augmentation), with its own start
noise pre ~ U(−1, 1) (the pre-sigmoid image of x[0]).

Order is a pure function of (seed, sample index): the crop and the noise of sample i come from
stateless random ops seeded by (seed, i), and the image sequence from a seeded shuffle, so a
resumed run (`start` = samples already seen) continues with exactly the data it would have
seen.

numpy_batch is the same sampling without TensorFlow (crops, flips and noise from NumPy's
generator seeded by (seed, step)), for Keras' JAX backend (tf_propo.train_jax) and for runs
that mix crop sizes (--crop_sizes: step_crop, mixed_crop_dataset).
"""

import glob
import os

import numpy as np

from tf_propo import image_io
from tf_propo.errors import UsageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def list_images(folder):
    paths = []
    for root, _, files in os.walk(folder):
        paths += [os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(paths)


def is_pattern(spec):
    """Whether a target spec is a glob pattern rather than a path."""
    return any(c in spec for c in "*?[") and not os.path.exists(spec)


def image_paths(specs, flag="--targets"):
    """Image paths of a list of image files, folders (their images, sorted) and glob patterns
    (their matches, sorted), or a UsageError naming `flag`."""
    paths = []
    for spec in specs or []:
        if is_pattern(spec):
            found = sorted(p for p in glob.glob(os.path.expanduser(spec))
                           if os.path.isfile(p) and p.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise UsageError(f"{flag}: {spec} matches no images")
            paths += found
        elif os.path.isdir(spec):
            found = list_images(spec)
            if not found:
                raise UsageError(f"{flag}: no images in {spec}")
            paths += found
        elif os.path.exists(spec):  # reading it says what is wrong with a special file
            paths.append(spec)
        else:
            raise UsageError(f"{flag}: {spec}: no such file or folder")
    if not paths:
        raise UsageError(f"{flag} is required (images and/or folders)")
    return paths


def split_holdout(paths, holdout):
    """(train, held out): every `holdout`-th image of the sorted list is held out for
    evaluation on textures the model never saw (0: none)."""
    if not holdout:
        return list(paths), []
    held = [p for i, p in enumerate(paths) if i % holdout == holdout - 1]
    return [p for p in paths if p not in held], held


def held_out_names(targets, holdout):
    """File names split_holdout leaves out of a folder of targets (for config.json), or None
    when nothing is held out."""
    if not (holdout and os.path.isdir(targets)):
        return None
    _, held = split_holdout(list_images(targets), holdout)
    return [os.path.basename(p) for p in held]


def unseen_by(model_config, paths):
    """`paths` less the images a model trained on (by file name, where its training folder
    is here to list): what its config.json lists as held out, and images from elsewhere."""
    trained_on = model_config.get("targets")
    if not (trained_on and os.path.isdir(trained_on)):
        return list(paths)
    seen = {os.path.basename(p) for p in list_images(trained_on)}
    seen -= set(model_config.get("held_out") or ())
    return [p for p in paths if os.path.basename(p) not in seen]


def training_paths(spec, holdout=0):
    """The image files a local --targets (a file or a folder) trains on, `holdout` applied;
    a UsageError if there are none (cheap: the trainers call it before importing
    TensorFlow)."""
    if os.path.isdir(spec):
        paths, _ = split_holdout(list_images(spec), holdout)
        if not paths:
            raise UsageError(f"--targets={spec}: no {'/'.join(IMAGE_EXTENSIONS)} images in "
                             "that folder")
        return paths
    if os.path.exists(spec):
        if holdout:
            raise UsageError(f"--holdout={holdout} leaves images of a folder out; --targets="
                             f"{spec} is one image (use --holdout=0)")
        return [spec]
    raise UsageError(f"--targets={spec}: no such file or folder")


def check_targets(spec, holdout=0):
    """Before TensorFlow's import: a local --targets holds images (training_paths), and
    --holdout is asked only of a folder (a tfds dataset's other splits are its unseen ones)."""
    if not spec.startswith("tfds:"):
        training_paths(spec, holdout)
    elif holdout:
        raise UsageError(f"--holdout={holdout} leaves images of a folder out; --targets={spec} "
                         "trains on the dataset's train split, and its other splits are the "
                         "unseen ones (use --holdout=0)")


def load_local_images(spec, resize, holdout=0):
    """uint8 RGB arrays of an image file or a folder of images, short edge resized."""
    paths = training_paths(spec, holdout)
    images = []
    for path in paths:
        image = image_io.read_image(path)
        if resize:
            image = image_io.resize_short_edge(image, resize)
        images.append(image_io.to_uint8(image))
    return images, paths


def _tfds_images(name, resize, split="train"):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    try:
        dataset = tfds.load(name, split=split, shuffle_files=False)
    except Exception as e:  # tfds raises many kinds: not found, no network, bad split
        raise UsageError(f"--targets=tfds:{name}: cannot load ({str(e).splitlines()[0]})") \
            from None

    def prepare(example):
        image = example["image"]
        if image.shape.rank == 3 and image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        image = image[..., :3]
        if resize:
            shape = tf.cast(tf.shape(image)[:2], tf.float32)
            scale = resize / tf.reduce_min(shape)
            size = tf.cast(tf.round(shape * scale), tf.int32)
            image = tf.image.resize(image, size, method="area", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

    return dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)


def check_crop_size(crop_size):
    if crop_size % 16:
        raise UsageError(f"--crop_size={crop_size} must be a multiple of 16")


def _check_crop(images, crop_size, origin):
    small = [(i, im.shape) for i, im in enumerate(images) if min(im.shape[:2]) < crop_size]
    if small:
        i, shape = small[0]
        raise UsageError(f"--crop_size={crop_size} is larger than {origin[i]} "
                         f"({shape[1]}x{shape[0]} after resizing)")


def texture_dataset(targets, crop_size, batch_size, seed=0, resize=256, start=0,
                    shuffle_buffer=256, holdout=0):
    """A repeating dataset of {"target": [B, crop, crop, 3] float32 in [0, 1],
    "pre": [B, crop, crop, 3] float32 in [−1, 1]}; `start` samples are skipped (resume);
    with a folder, `holdout` leaves every holdout-th image out (split_holdout)."""
    import tensorflow as tf

    check_crop_size(crop_size)
    if targets.startswith("tfds:"):
        if resize and crop_size > resize:
            raise UsageError(f"--crop_size={crop_size} is larger than --resize={resize}")
        images = _tfds_images(targets[len("tfds:"):], resize)
    else:
        arrays = local_training_images(targets, crop_size, resize, holdout)
        images = tf.data.Dataset.from_generator(
            lambda: iter(arrays), output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
        shuffle_buffer = min(shuffle_buffer, len(arrays))
    images = images.repeat().shuffle(shuffle_buffer, seed=seed)

    def sample(index, image):
        crop_seed = tf.stack([tf.cast(seed, tf.int64), index])
        crop = tf.image.stateless_random_crop(image, [crop_size, crop_size, 3], crop_seed)
        crop = tf.image.stateless_random_flip_left_right(crop, crop_seed + 1)
        noise = tf.random.stateless_uniform([crop_size, crop_size, 3], crop_seed + 2,
                                            minval=-1.0, maxval=1.0)
        return {"target": tf.cast(crop, tf.float32) / 255.0, "pre": noise}

    dataset = images.enumerate().skip(start)
    dataset = dataset.map(sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def mixed_crop_dataset(targets, crop_size, batch_size, crop_sizes, seed=0, resize=256,
                       start_step=0, holdout=0):
    """texture_dataset with a crop size per step (step_crop): batch k is numpy_batch's batch of
    step start_step + k, so tf_propo.train and train_jax see the same batches. Local targets
    only (the images are held in memory)."""
    import tensorflow as tf

    if targets.startswith("tfds:"):
        raise UsageError("--crop_sizes needs an image or a folder of targets, not tfds")
    arrays = local_training_images(targets, max([crop_size, *crop_sizes]), resize, holdout)

    def batches():
        step = start_step
        while True:
            yield step_batch(arrays, crop_size, batch_size, crop_sizes, seed, step)
            step += 1

    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    return tf.data.Dataset.from_generator(
        batches, output_signature={"target": spec, "pre": spec}).prefetch(2)


def local_training_images(targets, crop_size, resize, holdout=0):
    """load_local_images, checked to be at least `crop_size` on each side."""
    check_crop_size(crop_size)
    arrays, paths = load_local_images(targets, resize, holdout)
    _check_crop(arrays, crop_size, paths)
    return arrays


def step_crop(crop_size, batch_size, crop_sizes, seed, step):
    """(crop size, batch size) of step `step` when a run mixes `crop_sizes` (empty: always
    (crop_size, batch_size)). The size is drawn uniformly per step from (seed, step), apart
    from numpy_batch's stream, so a resumed run continues the same sequence; a step of size s
    holds round(batch_size * (crop_size / s)²) crops (at least 1), about the pixels of a
    (crop_size, batch_size) step, so every size costs about the same per step."""
    if not crop_sizes:
        return crop_size, batch_size
    rng = np.random.default_rng([seed, step, 1])
    size = int(crop_sizes[rng.integers(len(crop_sizes))])
    return size, max(1, round(batch_size * (crop_size / size) ** 2))


def images_seen(crop_size, batch_size, crop_sizes, seed, steps):
    """Crops that steps 0 .. steps-1 of a run train on: steps × batch_size, or with mixed
    crop sizes the sum of step_crop's batches (the figure to set beside the authors' 800k)."""
    if not crop_sizes:
        return steps * batch_size
    return sum(step_crop(crop_size, batch_size, crop_sizes, seed, s)[1] for s in range(steps))


def step_batch(images, crop_size, batch_size, crop_sizes, seed, step):
    """numpy_batch of step `step` at its step_crop size and batch size."""
    size, count = step_crop(crop_size, batch_size, crop_sizes, seed, step)
    return numpy_batch(images, size, count, seed, step)


def numpy_batch(images, crop_size, batch_size, seed, step):
    """Batch number `step` as NumPy arrays {"target": [B, crop, crop, 3] float32 in [0, 1],
    "pre": [B, crop, crop, 3] float32 in [−1, 1]}: a random image, crop and flip per sample, a
    pure function of (seed, step) so a resumed run sees the same batches."""
    rng = np.random.default_rng([seed, step])
    targets = np.empty((batch_size, crop_size, crop_size, 3), np.float32)
    for i in range(batch_size):
        image = images[rng.integers(len(images))]
        top = rng.integers(image.shape[0] - crop_size + 1)
        left = rng.integers(image.shape[1] - crop_size + 1)
        crop = image[top:top + crop_size, left:left + crop_size]
        targets[i] = (crop[:, ::-1] if rng.integers(2) else crop) / np.float32(255.0)
    pre = rng.uniform(-1.0, 1.0, targets.shape).astype(np.float32)
    return {"target": targets, "pre": pre}
