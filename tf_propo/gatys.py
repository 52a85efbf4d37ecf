"""Gatys et al.'s optimisation-based synthesis: minimise the texture loss over the pixels.

Slow (minutes) and the best quality: the reference every other method is measured against.
As the authors ran it: L-BFGS-B (scipy, on the TensorFlow gradient) with pixel bounds [0, 1],
maxcor 20, no early stop (ftol = gtol = 0), from uniform noise. Adam with clipping to [0, 1]
is the alternative (`optimizer="adam"`), and `optimizer="lbfgs_projected"` the one for a few
steps from a good start (a polish): see projected_lbfgs.
"""

import weakref

import keras
import numpy as np
import scipy.optimize
import tensorflow as tf

from tf_propo import texture
from tf_propo import tiles

OPTIMIZERS = ("lbfgs", "adam", "lbfgs_projected")
# projected_lbfgs: the first step moves the largest pixel by this much (the loss has no natural
# scale); later steps take the quasi-Newton step as it is, shortened only if the loss rises.
FIRST_STEP = 0.02
MEMORY = 10


# One traced loss-and-gradient per encoder and layers, the target's Grams an argument: a new
# target (or a refinement after a fast method) reuses the graph instead of tracing anew.
_TRACED = weakref.WeakKeyDictionary()


def loss_and_gradient_fn(encoder, target_grams, layers, circular=False):
    """image [K, H, W, 3] -> (the texture loss summed over K, its gradient), traced once per
    encoder and layers; an image larger than a tile goes a tile at a time (tf_propo.tiles:
    the same values in a tile's memory), wrapped around when `circular`."""
    traced = _TRACED.setdefault(encoder, {})
    if layers not in traced:
        @tf.function(reduce_retracing=True)
        def loss_and_gradient(image, grams):
            with tf.GradientTape() as tape:
                tape.watch(image)
                total, _ = texture.texture_loss(encoder(image), grams, layers)
                loss = tf.reduce_sum(total)
            return loss, tape.gradient(loss, image)

        traced[layers] = loss_and_gradient
    grams = {layer: tf.convert_to_tensor(target_grams[layer], tf.float32) for layer in layers}

    def loss_and_gradient(image):
        if tiles.needed(image.shape):
            return tiles.loss_and_gradient(encoder, image.numpy(), grams, layers, circular)
        return traced[layers](image, grams)

    return loss_and_gradient


def _lbfgs(loss_and_gradient, start, steps, on_step):
    shape = start.shape

    def fun(flat):
        loss, gradient = loss_and_gradient(tf.constant(flat.reshape(shape), tf.float32))
        return float(loss), gradient.numpy().astype(np.float64).ravel()

    def callback(intermediate_result):
        on_step(float(intermediate_result.fun),
                lambda: intermediate_result.x.reshape(shape).astype(np.float32))

    result = scipy.optimize.minimize(
        fun, start.astype(np.float64).ravel(), jac=True, method="L-BFGS-B",
        bounds=scipy.optimize.Bounds(0.0, 1.0), callback=callback,
        options={"maxiter": steps, "maxfun": 2 * steps + 20, "maxcor": 20,
                 "ftol": 0.0, "gtol": 0.0})
    return result.x.reshape(shape).astype(np.float32)


def _dot(a, b):
    """a · b without BLAS: OpenBLAS' threads spin on after a dot product and take the cores
    from TensorFlow's next gradient (measured: 65 ms a gradient instead of 45 at 256²)."""
    return float(np.einsum("i,i->", a, b))


def projected_lbfgs(loss_and_gradient, start, steps, memory=MEMORY, first_step=FIRST_STEP,
                    on_step=None, trust=None):
    """`steps` L-BFGS iterations on the pixels of `start`, kept in [0, 1] by projection, and
    within `trust` of their start where it is given (a box around `start`).

    One gradient per iteration where scipy's L-BFGS-B spends two to six on its line search
    (and ~50 ms of its own per call at 256²): unit quasi-Newton steps, a step shortened
    (x0.3, at most 6 times) only when the loss would rise. Meant for a polish of a few steps
    from a good start, where a line search buys little; from noise use "lbfgs".
    Returns the image with the lowest loss found, float32, shaped as `start`.
    """
    shape = start.shape

    def evaluate(flat):
        loss, gradient = loss_and_gradient(tf.constant(flat.reshape(shape), tf.float32))
        return float(loss), gradient.numpy().astype(np.float64).ravel()

    x = np.asarray(start, np.float64).ravel()
    lower, upper = (0.0, 1.0) if trust is None else (np.clip(x - trust, 0.0, 1.0),
                                                      np.clip(x + trust, 0.0, 1.0))
    loss, gradient = evaluate(x)
    pairs = []  # (s, y, 1 / yᵀs), newest last
    for _ in range(steps):
        # Pixels held at a bound by their gradient stay out of the step (an active set, as
        # in projected Newton methods): projecting a quasi-Newton step that mixes them in
        # stalls wherever many pixels sit at 0 or 1.
        free = ~(((x <= lower) & (gradient > 0)) | ((x >= upper) & (gradient < 0)))
        direction = np.where(free, gradient, 0.0)  # two-loop recursion: H · gradient
        alphas = []
        for s, y, rho in reversed(pairs):
            alphas.append(rho * _dot(s, direction))
            direction -= alphas[-1] * y
        if pairs:
            s, y, _ = pairs[-1]
            direction *= _dot(s, y) / _dot(y, y)
        else:
            direction *= first_step / max(float(np.abs(gradient).max()), 1e-30)
        for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
            direction += s * (alpha - rho * _dot(y, direction))
        direction = np.where(free, direction, 0.0)
        step = 1.0
        for _ in range(6):
            candidate = np.clip(x - step * direction, lower, upper)
            candidate_loss, candidate_gradient = evaluate(candidate)
            if candidate_loss < loss:
                break
            step *= 0.3
        else:
            break  # no descent along this direction: x is as good as this polish gets
        s, y = candidate - x, candidate_gradient - gradient
        curvature = _dot(s, y)
        if curvature > 1e-12:  # the curvature condition; projection can break it at bounds
            pairs = (pairs + [(s, y, 1.0 / curvature)])[-memory:]
        x, loss, gradient = candidate, candidate_loss, candidate_gradient
        if on_step:
            on_step(loss, lambda: x.reshape(shape).astype(np.float32))
    return x.reshape(shape).astype(np.float32)


def _adam(loss_and_gradient, start, steps, on_step, learning_rate):
    image = tf.Variable(start, dtype=tf.float32)
    optimizer = keras.optimizers.Adam(learning_rate)

    @tf.function
    def step():
        loss, gradient = loss_and_gradient(tf.identity(image))
        optimizer.apply_gradients([(gradient, image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))
        return loss

    for _ in range(steps):
        on_step(float(step()), image.numpy)
    return image.numpy()


def synthesize(encoder, target_grams, start, steps, layers=texture.TEXTURE_LAYERS,
               optimizer="lbfgs", learning_rate=0.02, on_step=None, circular=False,
               trust=None):
    """Optimise each image of `start` [K, H, W, 3] (values in [0, 1]) for `steps` iterations.

    encoder: a VGG encoder with (at least) `layers` as taps; target_grams: {layer: [1, C, C]}.
    on_step(loss, current) is called after every iteration; current() returns the image being
    optimised [1, H, W, 3] (a call, so nobody pays for a copy they do not want).
    circular: the images wrap around (the encoder pads circularly; tiles wrap too).
    trust: lbfgs_projected only: every pixel stays within this of its start (None: anywhere
    in [0, 1]).
    Returns the images, float32 [K, H, W, 3].
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if trust is not None and (optimizer != "lbfgs_projected" or not trust > 0):
        raise ValueError(f"trust must be None or > 0 with optimizer='lbfgs_projected', got "
                         f"{trust!r} with {optimizer!r}")
    loss_and_gradient = loss_and_gradient_fn(encoder, target_grams, tuple(layers), circular)
    on_step = on_step or (lambda loss, current: None)
    results = []
    for sample in np.asarray(start, np.float32):
        sample = sample[None]
        if optimizer == "lbfgs":
            results.append(_lbfgs(loss_and_gradient, sample, steps, on_step))
        elif optimizer == "lbfgs_projected":
            results.append(projected_lbfgs(loss_and_gradient, sample, steps, on_step=on_step,
                                           trust=trust))
        else:
            results.append(_adam(loss_and_gradient, sample, steps, on_step, learning_rate))
    return np.concatenate(results, axis=0)
