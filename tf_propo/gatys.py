"""Gatys et al.'s optimisation-based synthesis: minimise the texture loss over the pixels.

Slow (minutes) and the best quality: the reference every other method is measured against.
As the authors ran it: L-BFGS-B (scipy, on the TensorFlow gradient) with pixel bounds [0, 1],
maxcor 20, no early stop (ftol = gtol = 0), from uniform noise. Adam with clipping to [0, 1]
is the alternative (`optimizer="adam"`).
"""

import weakref

import keras
import numpy as np
import scipy.optimize
import tensorflow as tf

from tf_propo import texture

OPTIMIZERS = ("lbfgs", "adam")


# One traced loss-and-gradient per encoder and layers, the target's Grams an argument: a new
# target (or a refinement after a fast method) reuses the graph instead of tracing anew.
_TRACED = weakref.WeakKeyDictionary()


def _loss_and_gradient_fn(encoder, target_grams, layers):
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
    return lambda image: traced[layers](image, grams)


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
               optimizer="lbfgs", learning_rate=0.02, on_step=None):
    """Optimise each image of `start` [K, H, W, 3] (values in [0, 1]) for `steps` iterations.

    encoder: a VGG encoder with (at least) `layers` as taps; target_grams: {layer: [1, C, C]}.
    on_step(loss, current) is called after every iteration; current() returns the image being
    optimised [1, H, W, 3] (a call, so nobody pays for a copy they do not want).
    Returns the images, float32 [K, H, W, 3].
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    loss_and_gradient = _loss_and_gradient_fn(encoder, target_grams, tuple(layers))
    on_step = on_step or (lambda loss, current: None)
    results = []
    for sample in np.asarray(start, np.float32):
        sample = sample[None]
        if optimizer == "lbfgs":
            results.append(_lbfgs(loss_and_gradient, sample, steps, on_step))
        else:
            results.append(_adam(loss_and_gradient, sample, steps, on_step, learning_rate))
    return np.concatenate(results, axis=0)
