"""Sliced optimal transport of feature sets: random rotations and 1-D marginal matching.

One pass: rotate both feature sets [N, C] / [M, C] by a random orthogonal matrix, match every
1-D marginal of the source to the target's, rotate back. Matching by sorting is the exact 1-D
optimal transport (each value takes the target value of the same quantile; unequal counts are
handled by linear interpolation of the target's sorted values); `match_cdf` is Risser's binned
alternative (histogram CDF lookup). Repeated passes move the source's full distribution, not
only its covariance, towards the target's.
"""

import concurrent.futures
import functools
import os

import numpy as np
import tensorflow as tf

MATCHERS = ("sort", "cdf")


def random_rotation(dim, seed, dtype=tf.float32):
    """A Haar-uniform random orthogonal [dim, dim] matrix: QR of a Gaussian matrix with the
    signs of R's diagonal moved into Q (without that fix Q is not uniformly distributed)."""
    gaussian = tf.random.stateless_normal([dim, dim], seed, dtype=tf.float64)
    q, r = tf.linalg.qr(gaussian)
    return tf.cast(q * tf.sign(tf.linalg.diag_part(r)), dtype)


def _quantiles(sorted_rows, count):
    """`count` evenly spaced quantiles (at (i + 0.5) / count) of each row of sorted [D, M]
    values, by linear interpolation: [D, count]."""
    m = tf.shape(sorted_rows)[1]
    positions = (tf.cast(tf.range(count), tf.float64) + 0.5) * tf.cast(m, tf.float64) \
        / tf.cast(count, tf.float64) - 0.5
    positions = tf.clip_by_value(positions, 0.0, tf.cast(m - 1, tf.float64))
    lower = tf.cast(tf.floor(positions), tf.int32)
    upper = tf.minimum(lower + 1, m - 1)
    weight = tf.cast(positions - tf.floor(positions), sorted_rows.dtype)
    below = tf.gather(sorted_rows, lower, axis=1)
    return below + (tf.gather(sorted_rows, upper, axis=1) - below) * weight


def match_sorted(source, target):
    """Per column, give each source value the target's value of the same rank (quantile).

    The sorts run in NumPy (tf.numpy_function): its AVX-512 sorts are 2-10x faster than
    TensorFlow's CPU sort (a full top-k) at these sizes, and no gradient flows through a
    matching."""
    source_rows = tf.transpose(source)  # [D, N]: NumPy and TensorFlow sort along rows
    target_rows = tf.transpose(tf.cast(target, source.dtype))
    sorted_target = tf.ensure_shape(
        tf.numpy_function(_sorted_rows, [target_rows], source.dtype, stateful=False),
        target_rows.shape)
    wanted = _quantiles(sorted_target, tf.shape(source_rows)[1])
    matched = tf.numpy_function(_by_rank, [source_rows, wanted], source.dtype, stateful=False)
    return tf.transpose(tf.ensure_shape(matched, source_rows.shape))


def _sorted_rows(rows):
    out = np.empty_like(rows)

    def sort(part):
        out[part] = np.sort(rows[part], axis=-1)

    _in_parallel(sort, rows.shape)
    return out


def _by_rank(rows, wanted):
    """Each row's values replaced by `wanted`'s (sorted) values of the same rank. Ties, rare
    after a random rotation, take theirs in any order."""
    matched = np.empty_like(rows)

    def assign(part):
        np.put_along_axis(matched[part], np.argsort(rows[part], axis=-1), wanted[part],
                          axis=-1)

    _in_parallel(assign, rows.shape)
    return matched


# Elements per NumPy task: rows of a few MB each, so the sorts' index arrays stay small
# whatever the image's size (relu1_1 of a 2048² texture is 64 rows of 4M values).
TASK_ELEMENTS = 1 << 21


def _in_parallel(work, shape):
    """work(slice of rows) over all rows of `shape` [rows, columns], in parts run on every
    core (NumPy's sorts free the GIL)."""
    rows, columns = shape
    cores = _cores()
    step = max(1, min(TASK_ELEMENTS // max(columns, 1), -(-rows // cores)))
    parts = [slice(start, min(start + step, rows)) for start in range(0, rows, step)]
    if cores < 2 or len(parts) < 2:
        for part in parts:
            work(part)
        return
    for future in [_pool().submit(work, part) for part in parts]:
        future.result()


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count() or 1


@functools.cache
def _pool():
    return concurrent.futures.ThreadPoolExecutor(_cores())


def match_cdf(source, target, bins=256):
    """Per column, map source values through the source's binned CDF and the target's inverse
    CDF (Risser's histogram matching; a replication found 128 bins grainy, 256 fine).

    As in classic histogram matching, the map is worked out at the bins' edges only (the
    source's CDF level there, through the target's inverse CDF) and each value takes its
    bin's two mapped edges, interpolated: a lookup per value, no search."""
    source_rows = tf.transpose(source)  # [D, N]: one histogram per row
    target_rows = tf.transpose(tf.cast(target, source.dtype))
    low = tf.minimum(tf.reduce_min(source_rows, 1), tf.reduce_min(target_rows, 1))[:, None]
    high = tf.maximum(tf.reduce_max(source_rows, 1), tf.reduce_max(target_rows, 1))[:, None]
    width = tf.maximum(high - low, 1e-12) / bins
    rows = tf.shape(source_rows)[0]
    offsets = tf.range(rows)[:, None] * bins

    def binned(values):
        """(position in bins [D, N], its bin's flat cell, the CDF at the bins' upper edges)."""
        position = (values - low) / width
        cells = tf.cast(tf.clip_by_value(tf.floor(position), 0, bins - 1), tf.int32) + offsets
        counts = tf.math.bincount(cells, minlength=rows * bins, maxlength=rows * bins,
                                  dtype=values.dtype)
        upper = tf.cumsum(tf.reshape(counts, [rows, bins]), axis=1) \
            / tf.cast(tf.shape(values)[1], values.dtype)
        return position, cells, upper

    position, cells, source_upper = binned(source_rows)
    _, _, target_upper = binned(target_rows)
    # The source CDF's levels at its bins' edges -> the target's inverse CDF there (first
    # target bin reaching the level, interpolated inside it; level 0, the source's minimum,
    # to the first bin holding any target value, not to an empty one below the target).
    levels = tf.pad(source_upper, [[0, 0], [1, 0]])  # [D, bins + 1]
    target_lower = tf.pad(target_upper, [[0, 0], [1, 0]])[:, :-1]
    target_bin = tf.minimum(tf.where(levels > 0, tf.searchsorted(target_upper, levels),
                                     tf.searchsorted(target_upper, levels, side="right")),
                            bins - 1)
    t_upper = tf.gather(target_upper, target_bin, batch_dims=1)
    t_lower = tf.gather(target_lower, target_bin, batch_dims=1)
    fraction = tf.math.divide_no_nan(levels - t_lower, t_upper - t_lower)
    edges = tf.reshape(low + (tf.cast(target_bin, source.dtype) + fraction) * width, [-1])
    # Each value: its bin's mapped lower and upper edges, interpolated by its place in the bin.
    edge_cells = cells + tf.range(rows)[:, None]  # row d's edges start at d·(bins + 1)
    start = tf.gather(edges, edge_cells)
    within = tf.clip_by_value(position - tf.cast(cells - offsets, source.dtype), 0.0, 1.0)
    return tf.transpose(start + (tf.gather(edges, edge_cells + 1) - start) * within)


def sliced_ot_pass(source, target, rotation, matcher="sort", bins=256):
    """Rotate, match every 1-D marginal, rotate back."""
    if matcher not in MATCHERS:
        raise ValueError(f"matcher must be one of {MATCHERS}, got {matcher!r}")
    rotated_source = tf.matmul(source, rotation)
    rotated_target = tf.matmul(target, rotation)
    if matcher == "sort":
        matched = match_sorted(rotated_source, rotated_target)
    else:
        matched = match_cdf(rotated_source, rotated_target, bins)
    return tf.matmul(matched, rotation, transpose_b=True)


def sliced_wasserstein(source, target, directions):
    """Sliced W2²: mean over unit `directions` [C, K] of the mean squared difference between
    the sorted projections (the target's resampled to the source's count)."""
    a = tf.sort(tf.matmul(directions, source, transpose_a=True, transpose_b=True), axis=-1)
    b = _quantiles(tf.sort(tf.matmul(directions, target, transpose_a=True, transpose_b=True),
                           axis=-1), tf.shape(source)[0])
    return tf.reduce_mean(tf.square(a - b))
