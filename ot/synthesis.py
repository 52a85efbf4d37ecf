"""Coarse-to-fine optimal-transport texture synthesis (Risser 2020; Universal Style Transfer).

From noise, for each layer deep to shallow (relu5_1 -> relu1_1): encode the current image to
that layer, move its features onto the target's feature distribution with the chosen
strategy, decode back to pixels with that layer's decoder, less the grid the decoders draw
at their stride (tf_propo.grid). A last pass matches the pixels'
colour distribution. No per-texture training: the target enters only as its features.

Strategies (see ot.linalg and ot.sliced):
  cholesky, eigh, pca  one covariance-matching step per layer (mean + covariance: WCT)
  sliced               `passes` random rotations per layer, exact 1-D matching by sorting
  cdf                  the same with binned-CDF (histogram) 1-D matching (Risser's)
"""

import tensorflow as tf

from tf_propo import grid
from tf_propo.ot import DEFAULT_PASSES, STRATEGIES
from tf_propo.ot import linalg
from tf_propo.ot import sliced

# Target feature rows kept per layer (a fixed random subset beyond this): the target's
# distribution is estimated as well from 16k samples, and sorting it each pass costs 4× less
# at relu1_1 of a 256² target.
MAX_TARGET_SAMPLES = 16384
# Covariance regularisation per method. Cholesky whitening is not aligned with the principal
# directions, so the tiny eigenvalues of deep layers (relu5_1 of a 256² image: 256 positions
# for 512 channels) blow up into white specks unless regularised strongly; eigh does best
# with little.
COVARIANCE_EPS = {"cholesky": 1e-2, "eigh": 1e-5, "pca": 1e-5}


def flatten(features):
    """[1, h, w, C] -> [h·w, C]."""
    return tf.reshape(features, [-1, tf.shape(features)[-1]])


def subsample(rows, limit=MAX_TARGET_SAMPLES, seed=(0, 0)):
    """At most `limit` rows of [N, C], a fixed (seeded) random subset."""
    if rows.shape[0] is not None and rows.shape[0] <= limit:
        return rows
    keys = tf.random.stateless_uniform([tf.shape(rows)[0]], seed)
    return tf.gather(rows, tf.math.top_k(keys, k=tf.minimum(limit, tf.shape(rows)[0])).indices)


def match_features(source, target, strategy, seed, passes=DEFAULT_PASSES):
    """Source features [N, C] moved onto the target's [M, C] distribution; float32."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    source, target = tf.cast(source, tf.float32), tf.cast(target, tf.float32)
    if strategy in linalg.METHODS:
        return linalg.match_covariance(source, target, strategy, eps=COVARIANCE_EPS[strategy])
    matcher = "sort" if strategy == "sliced" else "cdf"
    channels = source.shape[-1]
    for i in range(passes):
        rotation = sliced.random_rotation(channels, tf.stack([seed, tf.constant(i, tf.int64)]))
        source = sliced.sliced_ot_pass(source, target, rotation, matcher)
    return source


class OptimalTransportSynthesis:
    """Encode / match / decode over a trained DecoderFamily's layers, deep to shallow.

    padding: "reflect" (DecoderFamily.padded: no border frames) or "circular" (a texture
    that wraps around; its sides must then be multiples of 16). The target's features are
    taken with the same encoder.
    """

    def __init__(self, family, passes=DEFAULT_PASSES, padding="reflect"):
        self.family = family
        self.passes = passes
        self.padding = padding
        self.layers = tuple(reversed(family.layers_decoded))  # coarse to fine
        self.encoders, self.decoders = family.padded(padding)
        self._variants = {}

    def with_padding(self, padding):
        """The same synthesis (the same networks' weights) padding by `padding`."""
        if padding == self.padding:
            return self
        if padding not in self._variants:  # built once: a new one would be traced anew
            self._variants[padding] = OptimalTransportSynthesis(self.family, self.passes,
                                                                padding)
        return self._variants[padding]

    def target_features(self, target):
        """{layer: [M, C]} of a target image [H, W, 3] in [0, 1]."""
        image = tf.convert_to_tensor(target, tf.float32)[None]
        features = {layer: subsample(flatten(self.encoders[layer](image)))
                    for layer in self.layers}
        features["rgb"] = subsample(flatten(image))
        return features

    def synthesize(self, targets, noise, strategy, seed, timings=None):
        """noise [1, H, W, 3] in [0, 1] (sides multiples of 16) -> texture [1, H, W, 3] in
        [0, 1]. `timings`, if a dict, collects seconds per phase (encode / match / decode) —
        each phase is run eagerly then, so the split is real, not a guess."""
        seed = tf.cast(seed, tf.int64)
        image = tf.convert_to_tensor(noise, tf.float32)
        for index, layer in enumerate(self.layers):
            features = _timed(timings, "encode", lambda: self.encoders[layer](image))
            shape = tf.shape(features)
            matched = _timed(timings, "match", lambda: match_features(
                flatten(features), targets[layer], strategy, seed * 97 + index, self.passes))
            # The relu2_1 to relu5_1 decoders draw a faint grid at their stride, even decoding
            # a target's own features: each decode loses it (grid.remove_periodic).
            image = _timed(timings, "decode", lambda: tf.clip_by_value(grid.remove_periodic(
                self.decoders[layer](tf.reshape(matched, shape))), 0.0, 1.0))
        # Colours: the decoders' small errors shift them; match the pixels' distribution too.
        shape = tf.shape(image)
        pixels = _timed(timings, "match", lambda: match_features(
            flatten(image), targets["rgb"], strategy, seed * 97 + len(self.layers),
            self.passes))
        return tf.clip_by_value(tf.reshape(pixels, shape), 0.0, 1.0)


def _timed(timings, phase, fn):
    if timings is None:
        return fn()
    import time

    start = time.perf_counter()
    result = fn()
    if hasattr(result, "numpy"):
        result.numpy()  # wait for the work, not only its dispatch
    timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start
    return result


def load(model_dir, passes=DEFAULT_PASSES):
    """OptimalTransportSynthesis of a trained decoders model directory."""
    from tf_propo import model_dir as model_dirs
    from tf_propo.errors import UsageError

    config = model_dirs.load_config(model_dir)
    if config["mode"] != "decoders":
        raise UsageError(f"--decoders={model_dir} holds a {config['mode']} model, not "
                         "decoders (python -m tf_propo.train --flagfile=configs/decoders.flags)")
    family = model_dirs.build_model(config)
    model_dirs.restore(model_dir, family)
    return OptimalTransportSynthesis(family, passes)


# The bundled decoders (ot/weights/decoders, see ot/weights/README.md): the sha256 of their
# weights.npz. The loader checks the file against config.json and config.json against this.
BUNDLED_DECODERS_SHA256 = "b01a1b6b5cf2b0979e1c88d763d766e756f5b09f16440201e3eec40d6d165ab1"


def bundled_decoders():
    """The decoders shipped with the package (ot/weights/decoders), or a clear error."""
    import os

    from tf_propo import model_dir as model_dirs

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "decoders")
    return model_dirs.verified_bundle(path, BUNDLED_DECODERS_SHA256,
                                      "OT decoders (pass --decoders=DIR)")
