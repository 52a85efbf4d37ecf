"""The quilt's polish as a graph: projected L-BFGS steps on the Gram loss of VGG19's shallow
layers (methods.POLISH_LAYERS["quilt"]), reflection-padded, as methods.refine takes them.

A graph that an app runs has no optimiser library and no gradient ops that LiteRT lacks, so
both are written here: the encoder as plain functions of the pretrained weights whose
gradients are builtin ops (the ReLU's, the average pooling's, the reflection padding's and
the convolutions' are given by hand), and gatys.projected_lbfgs as one while loop over its
loss evaluations.
"""

import numpy as np
import tensorflow as tf

from tf_propo import gatys
from tf_propo import grid
from tf_propo import texture
from tf_propo import vgg


@tf.custom_gradient
def _relu(x):
    y = tf.nn.relu(x)
    return y, lambda upstream: upstream * tf.cast(y > 0, upstream.dtype)


@tf.custom_gradient
def _average_pool(x):
    """2 × 2 average pooling, stride 2 (an odd last row or column is dropped, as VALID)."""
    y = tf.nn.avg_pool2d(x, 2, 2, "VALID")

    def gradient(upstream):
        # Each value to its 2 × 2 block: four copies side by side in depth, then depth to
        # space. (A 6-D broadcast and reshape computes the same, 30x slower under LiteRT.)
        spread = tf.nn.depth_to_space(tf.concat([upstream / 4.0] * 4, axis=-1), 2)
        left = tf.shape(x) - tf.shape(spread)
        return tf.pad(spread, [[0, 0], [0, left[1]], [0, left[2]], [0, 0]])

    return y, gradient


def _fold_reflection(upstream, axis):
    """The gradient of a one-pixel reflection pad along `axis`: the padded rows 0 and n+1
    were copies of rows 1 and n−2 of the input; their gradients go back there (by pads,
    not concatenated zeros, which a static-shape conversion would store as constants)."""
    def rows(start, stop):
        index = [slice(None)] * 4
        index[axis] = slice(start, stop)
        return upstream[tuple(index)]

    inner = rows(1, -1)
    rest = tf.shape(upstream)[axis] - 3  # n − 1 rows beside the one a padded row lands on

    def placed(row, before, after):
        paddings = [[0, 0]] * 4
        paddings[axis] = [before, after]
        return tf.pad(row, paddings)

    return inner + placed(rows(0, 1), 1, rest - 1) + placed(rows(-1, None), rest - 1, 1)


@tf.custom_gradient
def _reflect_pad(x):
    """A one-pixel reflection pad of rows and columns, by slices and concatenations (LiteRT's
    MIRROR_PAD takes 10x as long)."""
    y = tf.concat([x[:, 1:2], x, x[:, -2:-1]], 1)
    y = tf.concat([y[:, :, 1:2], y, y[:, :, -2:-1]], 2)
    return y, lambda upstream: _fold_reflection(_fold_reflection(upstream, 1), 2)


def _convolution(kernel, bias):
    """x -> conv(x, kernel) + bias, VALID, stride 1; its gradient the full convolution with
    the flipped kernel (a plain convolution: XNNPACK runs those far faster than the
    transposed convolution that autodiff makes of it)."""
    # NumPy arrays, made constants inside each graph: a SavedModel cannot hold a custom
    # gradient that captures an eager tensor.
    kernel, bias = np.asarray(kernel, np.float32), np.asarray(bias, np.float32)
    flipped = np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))
    rows, cols = kernel.shape[0] - 1, kernel.shape[1] - 1

    @tf.custom_gradient
    def convolve(x):
        def gradient(upstream):
            padded = tf.pad(upstream, [[0, 0], [rows, rows], [cols, cols], [0, 0]])
            return tf.nn.conv2d(padded, flipped, 1, "VALID")

        return tf.nn.conv2d(x, kernel, 1, "VALID") + bias, gradient

    return convolve


class ShallowEncoder:
    """A pretrained build_encoder's layers up to its deepest tap as plain functions (the
    same values; reflection padding): {tap: features} of images [B, H, W, 3] in [0, 1]."""

    def __init__(self, encoder, taps):
        self.taps = tuple(taps)
        last = vgg.LAYER_ORDER.index(vgg.deepest(self.taps))
        self.order = vgg.LAYER_ORDER[1:last + 1]
        names = ["preprocess"] + [layer for layer in self.order if layer.startswith("conv")]
        self.convolutions = {name: _convolution(*encoder.get_layer(name).get_weights())
                             for name in names}

    def __call__(self, images):
        x = self.convolutions["preprocess"](tf.cast(images, tf.float32))
        features = {}
        for layer in self.order:
            if layer.startswith("conv"):
                x = self.convolutions[layer](_reflect_pad(x))
            elif layer.startswith("relu"):
                x = _relu(x)
            else:
                x = _average_pool(x)
            if layer in self.taps:
                features[layer] = x
        return features


def loss_and_gradient_fn(encoder, target_grams):
    """images [B, H, W, 3] -> (the texture loss of `encoder`'s taps summed over B, its
    gradient): gatys.loss_and_gradient_fn's, with builtin gradient ops only."""
    def loss_and_gradient(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            total, _ = texture.texture_loss(encoder(images), target_grams, encoder.taps)
            loss = tf.reduce_sum(total)
        return loss, tape.gradient(loss, images)

    return loss_and_gradient


def _dot(a, b):
    return tf.reduce_sum(a * b)


def _direction(gradient, free, pairs, scale, scaled, first_step):
    """The projected quasi-Newton direction (gatys.projected_lbfgs'): the two-loop recursion
    over `pairs` (s [M, ...], y [M, ...], rho [M], oldest first; a pair with rho 0 counts
    for nothing) on the free pixels' gradient."""
    s, y, rho = pairs
    direction = free * gradient
    alphas = []
    for i in reversed(range(rho.shape[0])):
        alphas.append(rho[i] * _dot(s[i], direction))
        direction -= alphas[-1] * y[i]
    direction *= tf.where(scaled, scale, first_step / tf.maximum(
        tf.reduce_max(tf.abs(gradient)), 1e-30))
    for i, alpha in zip(range(rho.shape[0]), reversed(alphas)):
        direction += s[i] * (alpha - rho[i] * _dot(y[i], direction))
    return free * direction


def projected_lbfgs(loss_and_gradient, start, steps, memory=gatys.MEMORY,
                    first_step=gatys.FIRST_STEP, tries=6):
    """gatys.projected_lbfgs in graph ops: the same active set, two-loop recursion, first
    step and shortening (x0.3, at most `tries` evaluations a step, until the loss falls;
    when none does, it stops). Every evaluation is one pass of a single while loop, so the
    graph holds the network once. Returns the last accepted image, shaped as `start`."""
    x = tf.convert_to_tensor(start, tf.float32)
    memory = max(1, min(memory, steps))
    zeros = 0.0 * x  # not tf.zeros_like: a static-shape conversion would store it
    pairs = (tf.stack([zeros] * memory), tf.stack([zeros] * memory), tf.zeros([memory]))

    def free_pixels(x, gradient):
        held = tf.logical_or(tf.logical_and(x <= 0.0, gradient > 0),
                             tf.logical_and(x >= 1.0, gradient < 0))
        return 1.0 - tf.cast(held, tf.float32)  # products, not image-sized constants

    def evaluate(state):
        (count, taken, tried, x, loss, gradient, candidate, direction, step, pairs, scale,
         scaled) = state
        candidate_loss, candidate_gradient = loss_and_gradient(candidate)
        first = tf.equal(count, 0)
        accepted = tf.logical_and(tf.logical_not(first), candidate_loss < loss)
        moved = tf.logical_or(first, accepted)
        # An accepted step's pair, kept where it meets the curvature condition.
        s, y = candidate - x, candidate_gradient - gradient
        curvature = _dot(s, y)
        keep = tf.logical_and(accepted, curvature > 1e-12)
        shifted = [tf.concat([p[1:], new[None]], 0) for p, new in
                   zip(pairs, (s, y, 1.0 / tf.maximum(curvature, 1e-12)))]
        pairs = tuple(tf.where(keep, new, old) for new, old in zip(shifted, pairs))
        scale = tf.where(keep, curvature / tf.maximum(_dot(y, y), 1e-30), scale)
        scaled = tf.logical_or(scaled, keep)
        x = tf.where(moved, candidate, x)
        loss = tf.where(moved, candidate_loss, loss)
        gradient = tf.where(moved, candidate_gradient, gradient)
        taken += tf.cast(accepted, tf.int32)
        # From a new point a new direction at full step; else the same one, shortened.
        fresh = _direction(gradient, free_pixels(x, gradient), pairs, scale, scaled,
                           first_step)
        direction = tf.where(moved, fresh, direction)
        tried = tf.where(moved, 0, tried + 1)
        step = tf.where(moved, 1.0, step * 0.3)
        candidate = tf.clip_by_value(x - step * direction, 0.0, 1.0)
        return (count + 1, taken, tried, x, loss, gradient, candidate, direction, step, pairs,
                scale, scaled)

    def going(count, taken, tried, *rest):
        return tf.logical_and(taken < steps, tried < tries)

    state = (tf.constant(0), tf.constant(0), tf.constant(0), x, tf.constant(np.inf),
             zeros, x, zeros, tf.constant(1.0), pairs, tf.constant(1.0), tf.constant(False))
    return tf.while_loop(going, lambda *state: evaluate(state), state)[3]


def polish(images, encoder, target_grams, steps):
    """images [B, H, W, 3] after `steps` projected L-BFGS steps against `target_grams`
    through `encoder` (a ShallowEncoder), the change's 16-periodic part taken out (as
    methods.refine does), clipped to [0, 1]."""
    images = tf.convert_to_tensor(images, tf.float32)
    refined = projected_lbfgs(loss_and_gradient_fn(encoder, target_grams), images, steps)
    change = grid.remove_periodic(refined - images, dtype=tf.float32)
    return tf.clip_by_value(images + change, 0.0, 1.0)
