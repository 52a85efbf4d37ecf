"""Synthesise a texture: python -m tf_propo.synthesize --method=gatys --target=IMG --out=o.png

Progress goes to stderr. The last line of stdout is one JSON object (DESIGN.md §5): method,
seconds (the synthesis itself, model loading excluded), texture_loss and noise_texture_loss
(mean over samples; see tf_propo.metrics), loss_ratio, size, samples, seed, out, ... .
With --samples=K > 1 the K samples are written side by side into --out.
Bad input: one line on stderr, exit code 2, no output file.
"""

import json
import os
import time

from tf_propo import cli  # first: quiets TensorFlow's start-up logging

from absl import flags

import importlib.resources

METHODS = ("gatys", "po", "adapo", "propo", "ot")
DEFAULT_TARGET = "material_metall006.png"

FLAGS = flags.FLAGS
flags.DEFINE_enum("method", "gatys", METHODS, "Synthesis method. gatys: optimisation from "
                  "noise (slow, the quality reference); po/adapo/propo: pseudo optimizers "
                  "from --model_dir; ot: optimal transport (no training).")
flags.DEFINE_string("target", None, "Target texture image (PNG/JPEG/WebP/BMP). Default: the "
                    f"bundled public-domain sample {DEFAULT_TARGET}.")
flags.DEFINE_integer("size", 256, "Output size in px (square); any size >= 16.", lower_bound=16)
flags.DEFINE_integer("target_size", 256, "Resize the target so its short edge is this many "
                     "px before taking its statistics (the paper's 256); 0 keeps it as is.",
                     lower_bound=0)
flags.DEFINE_integer("samples", 1, "Number of samples (different noise) to synthesise.",
                     lower_bound=1)
flags.DEFINE_integer("seed", 0, "Random seed: the same seed gives the same texture.")
flags.DEFINE_string("out", "texture.png", "Output image (.png/.jpg/.webp/.bmp), written "
                    "atomically; K samples are laid out side by side.")
flags.DEFINE_integer("steps", 300, "gatys: optimiser iterations.", lower_bound=1)
flags.DEFINE_enum("optimizer", "lbfgs", ("lbfgs", "adam"), "gatys: L-BFGS-B with pixel "
                  "bounds (the authors' choice) or Adam with clipping.")
flags.DEFINE_float("learning_rate", 0.02, "gatys with --optimizer=adam: step size in pixel "
                   "units.", lower_bound=0.0)
flags.DEFINE_enum("precision", "float32", ("float32", "mixed_bfloat16", "mixed_float16", "auto"),
                  "Arithmetic of the VGG passes during synthesis (metrics are always float32). "
                  "auto picks bfloat16 on CPUs with AVX512-BF16/AMX and on recent GPUs.")
flags.DEFINE_string("vgg_weights", "normalized", "VGG19 weights: normalized (Gatys' "
                    "normalised VGG19, fetched and cached on first use), imagenet, or "
                    "file:PATH (.npz/.h5/.weights.h5/.pth/.whl).")
flags.DEFINE_string("model_dir", None, "po/adapo/propo: directory of a trained model "
                    "(python -m tf_propo.train).")
flags.DEFINE_bool("save_stages", False, "po/adapo/propo: also write x[0..K] and the target as "
                  "a strip, OUT_stages.png.")
flags.DEFINE_enum("strategy", "sliced", ("cholesky", "eigh", "pca", "cdf", "sliced"),
                  "ot: how features are matched: covariance by cholesky / eigh / pca (one "
                  "step per layer), or sliced optimal transport with exact sorting (sliced) or "
                  "binned CDFs (cdf), --passes random rotations per layer.")
flags.DEFINE_integer("passes", 4, "ot with sliced/cdf: random rotations per layer.",
                     lower_bound=1)
flags.DEFINE_string("decoders", None, "ot: directory of trained decoders (python -m "
                    "tf_propo.train --flagfile=configs/decoders.flags). Default: the decoders "
                    "bundled with the package.")


def _target_path():
    if FLAGS.target:
        return FLAGS.target
    return str(importlib.resources.files("tf_propo") / "samples" / DEFAULT_TARGET)


def _gatys(evaluation, noise, policy):
    from tf_propo import gatys, texture, weights
    from tf_propo.progress import Progress

    if policy == "float32":
        encoder = evaluation.encoder
    else:
        encoder = weights.pretrained_encoder(texture.TEXTURE_LAYERS, source=FLAGS.vgg_weights)
    progress = Progress(FLAGS.steps * FLAGS.samples, f"gatys {FLAGS.size}px")
    start = time.perf_counter()
    images = gatys.synthesize(encoder, evaluation.target_grams, noise, FLAGS.steps,
                              optimizer=FLAGS.optimizer, learning_rate=FLAGS.learning_rate,
                              on_step=lambda loss, _: progress.update(loss=loss))
    seconds = time.perf_counter() - start
    return images, seconds, {"steps": FLAGS.steps, "optimizer": FLAGS.optimizer}


def _pseudo_optimizer(target, evaluation):
    """po / adapo / propo from --model_dir: x[0] noise -> x[K]; returns x[K] and per-stage
    figures."""
    import numpy as np
    import tensorflow as tf

    from tf_propo import image_io, model_dir, texture
    from tf_propo.errors import UsageError

    if not FLAGS.model_dir:
        raise UsageError(f"--method={FLAGS.method} needs --model_dir (a trained model)")
    config = model_dir.load_config(FLAGS.model_dir)
    if config["mode"] != FLAGS.method:
        raise UsageError(f"--model_dir={FLAGS.model_dir} holds a {config['mode']} model, not "
                         f"{FLAGS.method}; use --method={config['mode']}")
    if FLAGS.size % 16:
        raise UsageError(f"--size={FLAGS.size}: pseudo optimizers need a multiple of 16")
    model = model_dir.build_model(config)
    model_dir.restore(FLAGS.model_dir, model)
    layers = model.all_layers
    pre = tf.random.stateless_uniform([FLAGS.samples, FLAGS.size, FLAGS.size, 3],
                                      [FLAGS.seed, 0], minval=-1.0, maxval=1.0)

    @tf.function
    def run(target_image, pre):
        grams = texture.gram_matrices(model.features(target_image[None], layers), layers)
        return model({"pre": pre, "target_grams": grams})["images"]

    target_tensor = tf.constant(target, tf.float32)
    start = time.perf_counter()
    run(target_tensor, pre)  # trace and warm up: graph building is part of loading
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    stages = [s.numpy() for s in run(target_tensor, pre)]
    seconds = time.perf_counter() - start
    extra = {"model_dir": os.path.abspath(FLAGS.model_dir), "warmup_seconds": round(warmup, 3),
             "stages": [float(evaluation.texture_loss(x).mean()) for x in stages]}
    if FLAGS.save_stages:
        strip_path = os.path.splitext(FLAGS.out)[0] + "_stages.png"
        tiles = [s[0] for s in stages] + [image_io.resize_short_edge(target, FLAGS.size)]
        image_io.write_image(strip_path, image_io.tile_horizontally(tiles))
        extra["stages_out"] = os.path.abspath(strip_path)
    return np.asarray(stages[-1]), seconds, extra


def _optimal_transport(target, noise):
    """ot: coarse-to-fine encode / match / decode from the reference noise, per sample."""
    import numpy as np
    import tensorflow as tf

    from tf_propo.ot import synthesis

    ot = synthesis.load(FLAGS.decoders or synthesis.bundled_decoders(), FLAGS.passes)
    targets = ot.target_features(target)
    # Decoders invert whole poolings: work on the next multiple of 16, crop to --size.
    padded = -(-FLAGS.size // 16) * 16
    start_noise = tf.image.resize(noise, [padded, padded], method="nearest") \
        if padded != FLAGS.size else tf.constant(noise)
    run = tf.function(lambda image, seed: ot.synthesize(targets, image, FLAGS.strategy, seed))
    start = time.perf_counter()
    run(start_noise[:1], tf.constant(FLAGS.seed, tf.int64))  # trace and warm up
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    images = [run(start_noise[i:i + 1], tf.constant(FLAGS.seed * 1000 + i, tf.int64))[0]
              for i in range(FLAGS.samples)]
    seconds = time.perf_counter() - start
    images = np.stack([im.numpy()[:FLAGS.size, :FLAGS.size] for im in images])
    return images, seconds, {"strategy": FLAGS.strategy, "passes": FLAGS.passes,
                             "warmup_seconds": round(warmup, 3)}


def main(argv):
    del argv
    from tf_propo import image_io

    image_io.check_output_path(FLAGS.out)
    target_path = _target_path()
    target = image_io.read_image(target_path)
    if FLAGS.target_size:
        target = image_io.resize_short_edge(target, FLAGS.target_size)

    from tf_propo import metrics, precision

    policy = precision.apply(FLAGS.precision)
    evaluation = metrics.TextureMetrics(target, vgg_weights=FLAGS.vgg_weights)
    noise = metrics.reference_noise(FLAGS.seed, FLAGS.size, FLAGS.samples)
    if FLAGS.method == "gatys":
        images, seconds, extra = _gatys(evaluation, noise, policy)
    elif FLAGS.method == "ot":
        images, seconds, extra = _optimal_transport(target, noise)
    else:
        images, seconds, extra = _pseudo_optimizer(target, evaluation)

    losses = evaluation.texture_loss(images)
    noise_losses = evaluation.texture_loss(noise)
    image_io.write_image(FLAGS.out, image_io.tile_horizontally(list(images)))
    result = {
        "method": FLAGS.method,
        "seconds": round(seconds, 3),
        "texture_loss": float(losses.mean()),
        "noise_texture_loss": float(noise_losses.mean()),
        "loss_ratio": float(losses.mean() / noise_losses.mean()),
        "per_sample_texture_loss": [float(v) for v in losses],
        "size": FLAGS.size,
        "samples": FLAGS.samples,
        "seed": FLAGS.seed,
        "precision": policy,
        "target": os.path.abspath(target_path),
        "out": os.path.abspath(FLAGS.out),
        **extra,
    }
    if FLAGS.samples > 1:
        result["diversity"] = evaluation.diversity(images)
    print(json.dumps(result))


if __name__ == "__main__":
    cli.run(main)
