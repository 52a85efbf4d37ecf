"""Every synthesis method behind one call shape, for the synthesize and evaluate commands.

Each function returns (images [K, S, S, 3] in [0, 1], seconds, extra): `seconds` is the
synthesis itself (models loaded and graphs traced beforehand), `extra` the method's own
figures for the JSON line. The start noise comes from the caller (metrics.reference_noise, the
same for every method given a seed) where the method starts from an image.
"""

import functools
import time
import weakref

import numpy as np
import tensorflow as tf

from tf_propo import grid
from tf_propo import model_dir as model_dirs
from tf_propo import po
from tf_propo import shapes
from tf_propo import texture
from tf_propo import tiles
from tf_propo import weights
from tf_propo.errors import UsageError
from tf_propo.progress import Progress

METHODS = shapes.METHODS


class TargetStatistics:
    """A target image [H, W, 3] and what the methods compute from it (Gram matrices, OT
    features, colours), each computed on first use and kept: one object passed to many
    calls takes the target's passes once. Every method takes one where it takes a target."""

    def __init__(self, image):
        self.image = np.asarray(image, np.float32)
        self._computed = {}

    def get(self, key, compute):
        """compute() the first time `key` is asked for, the kept value after."""
        if key not in self._computed:
            self._computed[key] = compute()
        return self._computed[key]

    def metrics(self, vgg_weights="normalized", encoder=None):
        """The target's metrics.TextureMetrics (Gatys' target and every report's scorer);
        encoder: another TextureMetrics' encoder to share."""
        from tf_propo import metrics

        return self.get(("metrics", vgg_weights), lambda: metrics.TextureMetrics(
            self.image, vgg_weights=vgg_weights, encoder=encoder))


def target_statistics(target):
    """`target` as TargetStatistics (itself if it is one)."""
    return target if isinstance(target, TargetStatistics) else TargetStatistics(target)


def gatys(target, noise, steps, optimizer="lbfgs", learning_rate=0.02, progress=True,
          tileable=False, vgg_weights="normalized"):
    """Optimisation from `noise` [K, H, W, 3] against the Grams of `target` (an image or
    TargetStatistics) on its float32 scorer's encoder (L-BFGS-B's line search stops early on
    bfloat16 gradients), or with `tileable` one that pads circularly, against the target's
    reflection-padded Grams (refine says why), so the texture wraps without a seam."""
    from tf_propo import gatys as gatys_lib

    target = target_statistics(target)
    evaluation = target.metrics(vgg_weights)
    encoder, target_grams = evaluation.encoder, evaluation.target_grams
    if tileable:
        encoder = _refine_encoder(evaluation.layers, "float32", "circular", vgg_weights)
        target_grams = _target_grams(target, evaluation.layers, "float32", vgg_weights)
    bar = Progress(steps * len(noise), f"gatys {noise.shape[1]}px") if progress else None
    start = time.perf_counter()
    images = gatys_lib.synthesize(
        encoder, target_grams, noise, steps, layers=evaluation.layers,
        optimizer=optimizer, learning_rate=learning_rate,
        on_step=(lambda loss, _: bar.update(loss=loss)) if bar else None, circular=tileable)
    return images, time.perf_counter() - start, {"steps": steps, "optimizer": optimizer,
                                                 "tileable": tileable}


# The pretrained ProPO shipped with the package (tf_propo/pretrained/propo, see the README
# there): the sha256 of its weights.npz, checked against its config.json on every load.
BUNDLED_PROPO_SHA256 = "87c3894d84f0b38ccbf3513a3f72c4f95f88f50c7e595c1a35c9a268ed054f18"


def bundled_propo():
    """The pretrained ProPO model directory shipped with the package, or a clear error."""
    import os

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained", "propo")
    return model_dirs.verified_bundle(path, BUNDLED_PROPO_SHA256,
                                      "pretrained ProPO (pass --model_dir=DIR)")


def load_pseudo_optimizer(model_dir, method):
    """(the trained ProgressiveOptimizer of `model_dir`, checked to be a `method` model, the
    directory used); no model_dir: the bundled ProPO for propo, an error for po/adapo."""
    if not model_dir and method == "propo":
        model_dir = bundled_propo()
    if not model_dir:
        raise UsageError(f"--method={method} needs --model_dir (a trained model)")
    config = model_dirs.load_config(model_dir)
    if config["mode"] == "decoders":
        raise UsageError(f"--model_dir={model_dir} holds OT decoders, not a {method} model; "
                         f"use --method=ot --decoders={model_dir}")
    if config["mode"] != method:
        raise UsageError(f"--model_dir={model_dir} holds a {config['mode']} model, not "
                         f"{method}; use --method={config['mode']}")
    model = model_dirs.build_model(config)
    model_dirs.restore(model_dir, model)
    return model, model_dir


def pseudo_optimizer(model, target, size, samples, seed, tileable=False):
    """po / adapo / propo: x[0] noise -> x[K] at `size` (a side or (height, width), multiples
    of 16); returns x[K], seconds, and every stage's images in extra["stage_images"] (x[0] ..
    x[K]). tileable: the model padded circularly throughout (ProgressiveOptimizer.padded)."""
    height, width = shapes.sides(size)
    problem = shapes.size_problem("propo", height, width)
    if problem:
        raise UsageError(f"size {width}x{height}: {problem}")
    if tileable:
        model = model.padded("circular")
    pre = po.start_noise(seed, (height, width), samples)
    run = _traced(model, None, lambda: _pseudo_optimizer_run(model))
    target_tensor = tf.constant(target_statistics(target).image)
    warmup = _warm_up(run, (target_tensor.shape, pre.shape),
                      lambda: run(target_tensor, pre))  # graph building is part of loading
    start = time.perf_counter()
    stages = [s.numpy() for s in run(target_tensor, pre)]
    seconds = time.perf_counter() - start
    return stages[-1], seconds, {"warmup_seconds": round(warmup, 3), "stage_images": stages}


# One tf.function per loaded model (and OT strategy): a new target or size reuses it (or
# retraces once for a new shape) instead of tracing a new function on every call.
_TRACED = weakref.WeakKeyDictionary()


def _traced(model, key, build):
    functions = _TRACED.setdefault(model, {})
    if key not in functions:
        functions[key] = build()
    return functions[key]


# The input shapes each traced function has run at: the first call of a shape traces and
# warms up outside the reported seconds, later ones (an API caller's loop) pay nothing extra.
_WARMED = weakref.WeakKeyDictionary()


def _warm_up(function, shape, call):
    """Run `call` (one call of `function` at `shape`) the first time that pair is seen; the
    seconds it took, 0.0 when already warm."""
    seen = _WARMED.setdefault(function, set())
    if shape in seen:
        return 0.0
    start = time.perf_counter()
    call()
    seen.add(shape)
    return time.perf_counter() - start


def _pseudo_optimizer_run(model):
    layers = model.all_layers

    @tf.function(reduce_retracing=True)
    def run(target_image, pre):
        grams = texture.gram_matrices(model.features(target_image[None], layers), layers)
        return model({"pre": pre, "target_grams": grams})["images"]

    return run


def load_optimal_transport(decoders=None, passes=None):
    """OptimalTransportSynthesis of `decoders` (None: the bundled ones) with `passes`
    rotations per layer (None: tf_propo.ot.DEFAULT_PASSES)."""
    from tf_propo.ot import DEFAULT_PASSES, synthesis

    return synthesis.load(decoders or synthesis.bundled_decoders(),
                          DEFAULT_PASSES if passes is None else passes)


# The polish of quilt and ot: a few refinement steps after the fast result, on shallow
# layers only, which see the fine grain at a fraction of the full loss's cost. Quilting
# copies the target's structure but mixes its blocks unevenly (it favours blocks that join
# well), which skews the fine-grain statistics; OT's decoders blur the grain. On the
# held-out benchmark (docs/results), for quilting VGG19's first block (relu1_1, pool1) did
# nearly as well as the first two (median 1.25 against 1.16) in 60% of the time, and brings
# the float32 graph (the export) under a second on a 2-core CPU; OT needs pool2 too (median
# 5.6 without it against 1.85), and the full loss polished it a little closer (1.6-1.8) at
# 1.5x the seconds, over its 2.5 s.
POLISH_LAYERS = {"quilt": ("relu1_1", "pool1"), "ot": ("relu1_1", "pool1", "pool2")}
# Default polish steps by method. Quilting's four: on the held-out benchmark six scored the
# same median and shares and drew the same pictures, only the hardest targets' ratios a
# little lower, for ~0.2 s more per 256² texture (docs/results). OT's decoders leave more
# to fix.
POLISH_STEPS = {"quilt": 4, "ot": 6}


def default_polish_steps(method):
    """The polish steps `method` takes when none are asked for (0 for a method not polished)."""
    return POLISH_STEPS.get(method, 0)


# How far (per channel, in [0, 1]) refinement steps after quilting may move a pixel. A quilt is
# made of the target's own blocks; unbounded, the full loss's deep layers repaint whole
# blocks in colours the target has nowhere (pale grey ones on nature_tile_teracota, whose
# exemplar holds a tile's grout edge). Within this, a 16×16 patch's mean colour moves less
# than metrics.NOVEL_DISTANCE: the steps retune the grain and cannot paint a blob.
QUILT_TRUST = 0.05


def optimal_transport(ot, target, noise, seed, strategy, polish_steps=POLISH_STEPS["ot"],
                      policy="float32", vgg_weights="normalized", tileable=False,
                      progress=False):
    """ot: coarse-to-fine encode / match / decode from `noise` [K, H, W, 3], per sample,
    then `polish_steps` steps of `refine` on POLISH_LAYERS["ot"] (0: none) under `policy`.

    tileable: circular padding in the encoder, the decoders and the polish; the sides must
    then be multiples of 16 (the decoders invert whole poolings; any other size is made on
    the next multiple of 16 and cropped).
    progress: a progress bar over the polish steps of a large output (refine's).
    """
    height, width = noise.shape[1:3]
    problem = shapes.size_problem("ot", height, width, tileable)
    if problem:
        raise UsageError(f"size {width}x{height}: {problem}")
    ot = ot.with_padding("circular" if tileable else "reflect")
    target = target_statistics(target)
    targets = target.get(("ot", ot), lambda: ot.target_features(target.image))
    padded = [-(-height // 16) * 16, -(-width // 16) * 16]
    start_noise = tf.image.resize(noise, padded, method="nearest") \
        if padded != [height, width] else tf.constant(noise)
    # A partial, not a lambda: TensorFlow counts traces per code object, and one lambda
    # traced once per strategy would read to it as one function retraced again and again.
    traced = _traced(ot, strategy, lambda: tf.function(
        functools.partial(ot.synthesize, strategy=strategy), reduce_retracing=True))
    run = lambda image, s: traced(targets, image, seed=s)  # noqa: E731
    warmup = _warm_up(traced, (tuple(start_noise.shape[1:]),
                                       tuple(tuple(t.shape) for t in targets.values())),
                      lambda: run(start_noise[:1], tf.constant(seed, tf.int64)))
    start = time.perf_counter()
    images = [run(start_noise[i:i + 1], tf.constant(seed * 1000 + i, tf.int64))[0]
              for i in range(len(noise))]
    seconds = time.perf_counter() - start
    images = np.stack([im.numpy()[:height, :width] for im in images])
    images, polish_seconds, _ = refine(target, images, polish_steps, POLISH_LAYERS["ot"],
                                       policy, tileable, vgg_weights,
                                       progress="polish" if progress else None)
    return images, seconds + polish_seconds, {
        "strategy": strategy, "passes": ot.passes, "polish_steps": polish_steps,
        "tileable": tileable, "warmup_seconds": round(warmup, 3)}


_REFINE_ENCODERS = {}


def _refine_encoder(layers, policy, padding, vgg_weights):
    key = (layers, policy, padding, vgg_weights)
    if key not in _REFINE_ENCODERS:
        _REFINE_ENCODERS[key] = weights.pretrained_encoder(
            layers, source=vgg_weights, dtype=policy, padding=padding)
    return _REFINE_ENCODERS[key]


def _target_grams(target, layers, policy, vgg_weights):
    """The Grams of a TargetStatistics' image at `layers` through a reflection-padded VGG19,
    the statistics every refinement descends to (a tile at a time for a target larger than
    one, as the scorer's)."""
    return target.get(("grams", layers, policy, vgg_weights, "reflect"), lambda: (
        tiles.gram_matrices(_refine_encoder(layers, policy, "reflect", vgg_weights),
                            target.image[None], layers)))


# From this many pixels (the samples together) a polish or refinement step takes seconds on
# a CPU (about 6 s at 2048², bfloat16, 2 cores), and the steps show a progress bar when asked.
PROGRESS_PIXELS = 1024 * 1024


def is_long_work(images):
    """Whether VGG19 passes over `images` [K, H, W, 3] take long enough (PROGRESS_PIXELS)
    that the user should hear of them: the polish's and refinement's bars, the scoring's
    line."""
    return images.shape[0] * images.shape[1] * images.shape[2] >= PROGRESS_PIXELS


def refine(target, images, steps, layers=texture.TEXTURE_LAYERS, policy="float32",
           tileable=False, vgg_weights="normalized", trust=None, progress=None):
    """`images` [K, H, W, 3] after `steps` projected L-BFGS steps (gatys.projected_lbfgs:
    one gradient per step) on the texture loss of `layers` against `target` [h, w, 3]
    through a reflection-padded VGG19, from a fast method's result; (images, seconds,
    extra).

    policy: the encoder's Keras dtype policy; the loss and the optimiser are float32 or
    better whatever it is, and from a good start bfloat16 gradients serve as well.
    tileable: the images wrap around; the encoder then pads circularly, so the refinement
    keeps the wrap seamless. The steps' change loses its 16-periodic part (VGG's pooling
    grid, tf_propo.grid).
    trust: every pixel stays within this of its value in `images` (None: anywhere in
    [0, 1]); QUILT_TRUST is the refinement's after quilting.
    progress: a name for a progress bar over the steps on stderr, shown from PROGRESS_PIXELS
    (None: no bar).
    """
    from tf_propo import gatys as gatys_lib

    layers = tuple(layers)
    if steps <= 0:
        return np.asarray(images, np.float32), 0.0, {}
    target = target_statistics(target)
    # Never zero padding. Through a zero-padded VGG19 the border pixels face a constant
    # frame, and the steps answer the Grams' mismatch by painting bands along the edges
    # (pale on snow, dark on wood), which zero-padded statistics then reward. Reflection
    # padding gives the border no such lever; a torus has no border at all (circular), and
    # its target statistics are the reflection-padded ones too.
    target_grams = _target_grams(target, layers, policy, vgg_weights)
    encoder = _refine_encoder(layers, policy, "circular" if tileable else "reflect",
                              vgg_weights)
    loss_and_gradient = gatys_lib.loss_and_gradient_fn(encoder, target_grams, layers, tileable)
    images = np.asarray(images, np.float32)
    # An image larger than a tile is not warmed up: its tile passes trace on the first step,
    # and a warm-up pass would cost a whole step.
    warmup = 0.0 if tiles.needed(images.shape) else _warm_up(
        encoder, (layers, images.shape[1:]), lambda: loss_and_gradient(tf.constant(images[:1])))
    bar = None
    if progress and is_long_work(images):
        bar = Progress(steps * len(images), f"{progress} {images.shape[2]}x{images.shape[1]}")
    start = time.perf_counter()
    refined = gatys_lib.synthesize(
        encoder, target_grams, images, steps, layers=layers, optimizer="lbfgs_projected",
        circular=tileable, trust=trust,
        on_step=(lambda loss, _: bar.update(loss=loss)) if bar else None)
    if bar:
        bar.close()
    # VGG's gradient carries its pooling grid: on near-flat targets the steps draw a faint
    # 16-periodic checkerboard. The change keeps everything but that (tf_propo.grid); on a
    # torus only where whole cells wrap, else the pattern would break at the seam.
    if not tileable or not (images.shape[1] % grid.GRID_PERIOD or
                            images.shape[2] % grid.GRID_PERIOD):
        change = grid.remove_periodic(np.asarray(refined, np.float32) - images).numpy()
        bound = 1.0 if trust is None else trust
        refined = np.clip(images + np.clip(change, -bound, bound), 0.0, 1.0)
    return refined, time.perf_counter() - start, {"warmup_seconds": round(warmup, 3)}


def quilt(target, size, samples, seed, block=None, tileable=False,
          polish_steps=POLISH_STEPS["quilt"],
          policy="float32", vgg_weights="normalized", graph=False, progress=False):
    """Image quilting from `target` [H, W, 3] (tf_propo.quilting), then the pixels' colour
    mean and covariance matched to the target's (overlap matching favours the exemplar's
    smoother blocks, which shifts the colours), then `polish_steps` steps of `refine` on
    POLISH_LAYERS["quilt"] (0: none) under the dtype `policy`.

    The colour match is one linear map (a Cholesky whitening and colouring): sliced
    matching moves each pixel on its own and sprinkled colour specks no target has (seen
    on tile_teracota); on the held-out benchmark the linear map scored as well or better.

    graph: the quilt and its colour match by tf_propo.graph_quilting, from the noise of
    po.start_noise(seed), as the exported model computes them (no tileable mode).
    progress: a progress bar over the polish steps of a large output (refine's).
    """
    from tf_propo import quilting

    height, width = shapes.sides(size)
    statistics = target_statistics(target)
    target = statistics.image
    if graph and tileable:
        raise UsageError("the graph quilting has no tileable mode; quilt without graph")
    if graph:
        run = _graph_quilting(statistics, (height, width), block)  # traced and warmed up
        noise = po.start_noise(seed, (height, width), samples)
        start = time.perf_counter()
        images = np.stack([run(n).numpy() for n in noise])
    else:
        start = time.perf_counter()
        images = _quilts(statistics, height, width, samples, seed, block, tileable)
    seconds = time.perf_counter() - start
    images, polish_seconds, _ = refine(statistics, images, polish_steps,
                                       POLISH_LAYERS["quilt"], policy, tileable, vgg_weights,
                                       progress="polish" if progress else None)
    return images, seconds + polish_seconds, {
        "block": block or quilting.default_block_size(target.shape), "tileable": tileable,
        "polish_steps": polish_steps, "graph": graph}


def _quilts(statistics, height, width, samples, seed, block, tileable):
    """[samples, height, width, 3]: tf_propo.quilting's quilts, colour-matched."""
    from tf_propo import quilting
    from tf_propo.ot import synthesis

    target = statistics.image
    colours = statistics.get(("colours",), lambda: synthesis.subsample(
        synthesis.flatten(target[None])))
    images = []
    for i in range(samples):
        rng = np.random.default_rng([seed, i])
        image = quilting.quilt(target, (height, width), rng, block=block, tileable=tileable)
        matched = synthesis.match_features(synthesis.flatten(image[None]), colours,
                                           "cholesky", tf.constant(seed * 1000 + i, tf.int64))
        images.append(np.clip(tf.reshape(matched, image.shape).numpy(), 0.0, 1.0))
    return np.stack(images)


_GRAPH_QUILTS = {}


def _graph_quilting(statistics, size, block):
    """noise [H, W, 3] -> tf_propo.graph_quilting's quilt of the target, the graph traced
    once per block and run once per shape before it is timed."""
    from tf_propo import graph_quilting, quilting

    target = statistics.image
    block = min(block or quilting.default_block_size(target.shape), *target.shape[:2])
    overlap = quilting.default_overlap(block)
    if (block, overlap) not in _GRAPH_QUILTS:
        _GRAPH_QUILTS[block, overlap] = tf.function(
            functools.partial(graph_quilting.quilt, block=block, overlap=overlap),
            reduce_retracing=True)
    traced = _GRAPH_QUILTS[block, overlap]
    exemplar = tf.constant(target)
    run = lambda noise: traced(exemplar, noise)  # noqa: E731
    _warm_up(traced, (target.shape, tuple(size)),
             lambda: run(tf.zeros(list(size) + [3])))
    return run
