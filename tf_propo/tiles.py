"""Texture statistics of images too large for one VGG19 pass, tile by tile and exact.

A Gram matrix is a sum over positions, so it can be gathered a tile at a time: each tile is
encoded with a margin as wide as the deepest texture layer's receptive field reaches, and
only the positions of its inner part count. The texture loss depends on an image only
through its Grams, so its gradient splits the same way: each tile backpropagates the loss's
closed-form feature gradient (texture.feature_gradient, with the whole image's Grams) from
its inner positions, and the tiles' gradients add up where their margins overlap.
Zero padding: margins stop at the image's borders, where the encoder pads as it does for the
whole image; circular padding: margins wrap around, as the torus' own features do.

Memory is then one tile's (about 3 KB per pixel of it) whatever the image's size; the cost
is the margins' share of the work and, for a gradient, one more forward pass (1.2–1.3x
the seconds of one pass over the whole image at 2048²).
"""

import weakref

import numpy as np
import tensorflow as tf

from tf_propo import texture
from tf_propo import vgg

# Tiles start on the grid of the deepest layer they serve (pool4 and relu5_1: stride 16) and
# have margins as wide as its receptive field reaches past its cell (margin_for).
STRIDE = 16
TILE = 1024


def margin_for(layers):
    """The margin in px that makes the tiles' features at `layers` exact: how far the deepest
    layer's receptive field reaches past its cell, in whole STRIDEs (64 px for pool4)."""
    deepest = vgg.deepest(layers)
    if vgg.downsampling(deepest) > STRIDE:
        raise ValueError(f"layers: {deepest} is deeper than tiles serve (stride {STRIDE})")
    reach = (vgg.receptive_field(deepest) - vgg.downsampling(deepest)) / 2
    return int(-(-reach // STRIDE)) * STRIDE


def needed(shape, tile=None):
    """Whether images [B, H, W, 3] are larger than one tile (default TILE) on a side."""
    return max(shape[1], shape[2]) > (TILE if tile is None else tile)


def windows(length, margin, tile=None, circular=False):
    """[(begin, end, inner_begin, inner_end)] along an axis of `length` px: the tile
    [begin, end) read from the image (past its ends when circular: wrapped around) and the
    inner part [inner_begin, inner_end) whose positions count. The inner parts partition the
    axis; one window, without margins, when the axis fits in one tile (default TILE px)."""
    tile = TILE if tile is None else tile
    if tile <= 0 or tile % STRIDE or margin < 0 or margin % STRIDE:
        raise ValueError(f"tile and margin must be multiples of {STRIDE} (tile > 0), got "
                         f"{tile} and {margin}")
    if length <= tile:
        return [(0, length, 0, length)]
    result = []
    for inner_begin in range(0, length, tile):
        inner_end = min(inner_begin + tile, length)
        begin, end = inner_begin - margin, inner_end + margin
        if not circular:
            begin, end = max(begin, 0), min(end, length)
        result.append((begin, end, inner_begin, inner_end))
    return result


def _tiles(shape, layers, circular, tile):
    """(rows, columns) windows of every tile of images shaped [B, H, W, 3]."""
    margin = margin_for(layers)
    rows = windows(shape[1], margin, tile, circular)
    columns = windows(shape[2], margin, tile, circular)
    return [(r, c) for r in rows for c in columns]


def _read(images, rows, columns):
    """The tile images[:, begin:end, begin:end] of two windows, wrapped around the image."""
    (top, bottom), (left, right) = rows[:2], columns[:2]
    height, width = images.shape[1:3]
    if 0 <= top and bottom <= height and 0 <= left and right <= width:
        return images[:, top:bottom, left:right]
    return np.take(np.take(images, np.arange(top, bottom) % height, axis=1),
                   np.arange(left, right) % width, axis=2)


def _inner(features, layer, rows, columns):
    """The positions of a tile's features [B, h, w, C] at `layer` in its inner part."""
    stride = vgg.downsampling(layer)
    (top, _, inner_top, inner_bottom), (left, _, inner_left, inner_right) = rows, columns
    return features[:, (inner_top - top) // stride:(inner_bottom - top) // stride,
                    (inner_left - left) // stride:(inner_right - left) // stride]


# Per encoder and layers: the traced tile passes (a few tile shapes per image size; eager
# passes took twice the time of a traced whole image).
_TRACED = weakref.WeakKeyDictionary()


def _passes(encoder, layers):
    """(encode, backpropagate) traced for `encoder`: backpropagate(piece, inner, upstream)
    is the gradient with respect to the tile `piece` of Σ_l <F_l · upstream_l, F_l> over the
    positions of its inner part (int32 [top, bottom, left, right] in px of the piece), the
    product held constant: with upstream_l = ∂L/∂G_l scaled, the tile's share of ∂L/∂image
    (texture.feature_gradient's closed form)."""
    functions = _TRACED.setdefault(encoder, {})
    if layers not in functions:
        @tf.function(reduce_retracing=True)
        def encode(piece):
            return encoder(piece)

        @tf.function(reduce_retracing=True)
        def backpropagate(piece, inner, upstream):
            with tf.GradientTape() as tape:
                tape.watch(piece)
                features = encoder(piece)
                total = 0.0
                for layer in layers:
                    values = tf.cast(features[layer], tf.float32)
                    stride = vgg.downsampling(layer)
                    shape = tf.shape(values)
                    rows, columns = tf.range(shape[1]), tf.range(shape[2])
                    inside = (((rows >= inner[0] // stride) & (rows < inner[1] // stride))[:, None]
                              & ((columns >= inner[2] // stride)
                                 & (columns < inner[3] // stride))[None])
                    flat = tf.reshape(values, [shape[0], -1, shape[3]])
                    product = tf.reshape(tf.matmul(flat, upstream[layer]), shape)
                    mask = tf.cast(inside, tf.float32)[None, :, :, None]
                    total += tf.reduce_sum(tf.stop_gradient(product * mask) * values)
            return tape.gradient(total, piece)

        functions[layers] = (encode, backpropagate)
    return functions[layers]


def gram_matrices(encoder, images, layers=texture.TEXTURE_LAYERS):
    """texture.gram_matrices of encoder(images) for images [B, H, W, 3]: one pass when they
    fit in a tile, else `grams` (the same values in a tile's memory)."""
    images = np.asarray(images, np.float32)
    if needed(images.shape):
        return grams(encoder, images, layers)
    return texture.gram_matrices(encoder(tf.constant(images)), layers)


def grams(encoder, images, layers=texture.TEXTURE_LAYERS, circular=False, tile=None):
    """{layer: [B, C, C]} Grams of `images` [B, H, W, 3] (float32, as texture.gram_matrices
    of the whole images' features), `encoder` run on one tile at a time; circular: the
    images wrap around (the encoder's own padding then matters only for a single tile)."""
    sums, counts = _gram_sums(encoder, np.asarray(images, np.float32), layers, circular, tile)
    return {layer: sums[layer] / counts[layer] for layer in layers}


def _gram_sums(encoder, images, layers, circular, tile):
    """({layer: Σ FᵀF over the inner positions of every tile}, {layer: their count})."""
    encode = _passes(encoder, tuple(layers))[0]
    sums, counts = {}, {}
    for rows, columns in _tiles(images.shape, layers, circular, tile):
        features = encode(tf.constant(_read(images, rows, columns)))
        for layer in layers:
            inner = _inner(features[layer], layer, rows, columns)
            flat = tf.reshape(tf.cast(inner, tf.float32), [images.shape[0], -1, inner.shape[-1]])
            sums[layer] = sums.get(layer, 0.0) + tf.matmul(flat, flat, transpose_a=True)
            counts[layer] = counts.get(layer, 0) + int(flat.shape[1])
    return sums, counts


def loss_and_gradient(encoder, images, target_grams, layers=texture.TEXTURE_LAYERS,
                      circular=False, tile=None):
    """(the texture loss summed over the batch, its gradient [B, H, W, 3]), float32 tensors
    as gatys.loss_and_gradient_fn's, of `images` against `target_grams`, a tile at a time:
    one pass for the Grams, one to backpropagate each tile's share."""
    images = np.asarray(images, np.float32)
    layers = tuple(layers)
    sums, counts = _gram_sums(encoder, images, layers, circular, tile)
    whole = {layer: sums[layer] / counts[layer] for layer in layers}
    total, _ = texture.gram_loss(whole, target_grams, layers)
    upstream = {}  # ∂L/∂F = coef / (C²·N) · F (G − Ĝ), N the positions counted
    for layer in layers:
        channels = vgg.channels(layer)
        upstream[layer] = texture.LAYER_COEFFICIENT / (channels * channels * counts[layer]) * (
            whole[layer] - tf.cast(target_grams[layer], tf.float32))
    backpropagate = _passes(encoder, layers)[1]
    gradient = np.zeros_like(images)
    for rows, columns in _tiles(images.shape, layers, circular, tile):
        inner = tf.constant([rows[2] - rows[0], rows[3] - rows[0],
                             columns[2] - columns[0], columns[3] - columns[0]], tf.int32)
        share = backpropagate(tf.constant(_read(images, rows, columns)), inner, upstream)
        _add(gradient, share.numpy().astype(np.float32), rows, columns)
    return tf.reduce_sum(total), tf.constant(gradient)


def _add(gradient, share, rows, columns):
    """gradient[:, rows, columns] += share, the window wrapped around the image."""
    (top, bottom), (left, right) = rows[:2], columns[:2]
    height, width = gradient.shape[1:3]
    if 0 <= top and bottom <= height and 0 <= left and right <= width:
        gradient[:, top:bottom, left:right] += share
        return
    row_index = np.arange(top, bottom) % height
    column_index = np.arange(left, right) % width
    np.add.at(gradient, (slice(None), row_index[:, None], column_index[None, :]), share)


def diversity(encoder, images, circular=False, tile=None):
    """texture.diversity of the samples `images` [K, H, W, 3] at texture.DIVERSITY_LAYER, a
    tile at a time (a mean over positions: the tiles' means weighted by their positions)."""
    images = np.asarray(images, np.float32)
    layers = (texture.DIVERSITY_LAYER,)
    encode = _passes(encoder, layers)[0]
    total, count = 0.0, 0
    for rows, columns in _tiles(images.shape, layers, circular, tile):
        features = encode(tf.constant(_read(images, rows, columns)))
        inner = _inner(features[texture.DIVERSITY_LAYER], texture.DIVERSITY_LAYER, rows, columns)
        positions = int(inner.shape[1]) * int(inner.shape[2])
        total += float(texture.diversity(inner)) * positions
        count += positions
    return total / count
