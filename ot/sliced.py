"""Sliced optimal transport of feature sets: random rotations and 1-D marginal matching.

One pass: rotate both feature sets [N, C] / [M, C] by a random orthogonal matrix, match every
1-D marginal of the source to the target's, rotate back. Matching by sorting is the exact 1-D
optimal transport (each value takes the target value of the same quantile; unequal counts are
handled by linear interpolation of the target's sorted values); `match_cdf` is Risser's binned
alternative (histogram CDF lookup). Repeated passes move the source's full distribution, not
only its covariance, towards the target's.
"""

import tensorflow as tf

MATCHERS = ("sort", "cdf")


def random_rotation(dim, seed, dtype=tf.float32):
    """A Haar-uniform random orthogonal [dim, dim] matrix: QR of a Gaussian matrix with the
    signs of R's diagonal moved into Q (without that fix Q is not uniformly distributed)."""
    gaussian = tf.random.stateless_normal([dim, dim], seed, dtype=tf.float64)
    q, r = tf.linalg.qr(gaussian)
    return tf.cast(q * tf.sign(tf.linalg.diag_part(r)), dtype)


def _quantiles(sorted_values, count):
    """`count` evenly spaced quantiles (at (i + 0.5) / count) of each column of sorted
    [M, D] values, by linear interpolation: [count, D]."""
    m = tf.shape(sorted_values)[0]
    positions = (tf.cast(tf.range(count), tf.float64) + 0.5) * tf.cast(m, tf.float64) \
        / tf.cast(count, tf.float64) - 0.5
    positions = tf.clip_by_value(positions, 0.0, tf.cast(m - 1, tf.float64))
    lower = tf.cast(tf.floor(positions), tf.int32)
    upper = tf.minimum(lower + 1, m - 1)
    weight = tf.cast(positions - tf.floor(positions), sorted_values.dtype)[:, None]
    return (tf.gather(sorted_values, lower) * (1 - weight)
            + tf.gather(sorted_values, upper) * weight)


def match_sorted(source, target):
    """Per column, give each source value the target's value of the same rank (quantile)."""
    # Columns as rows: TF sorts along the last axis (another axis costs a transpose per sort).
    source_rows = tf.transpose(source)
    target_rows = tf.transpose(tf.cast(target, source.dtype))
    n = tf.shape(source_rows)[1]
    wanted = tf.transpose(_quantiles(tf.transpose(tf.sort(target_rows, axis=-1)), n))
    d = tf.shape(source_rows)[0]
    order = tf.argsort(source_rows, axis=-1, stable=True)  # order[d, r]: rank r's position
    # Scatter wanted[d, r] to position order[d, r] as one flat segment sum (each cell receives
    # exactly one value): 1.7x faster on CPU than scatter_nd with [D, N, 2] indices.
    cells = tf.reshape(order + tf.range(d)[:, None] * n, [-1])
    matched = tf.math.unsorted_segment_sum(tf.reshape(wanted, [-1]), cells, d * n)
    return tf.transpose(tf.reshape(matched, [d, n]))


def match_cdf(source, target, bins=256):
    """Per column, map source values through the source's binned CDF and the target's inverse
    CDF (Risser's histogram matching; a replication found 128 bins grainy, 256 fine)."""
    target = tf.cast(target, source.dtype)
    low = tf.minimum(tf.reduce_min(source, 0), tf.reduce_min(target, 0))
    high = tf.maximum(tf.reduce_max(source, 0), tf.reduce_max(target, 0))
    width = tf.maximum(high - low, 1e-12) / bins

    dims = tf.shape(source)[1]

    def cdf(x):
        index = tf.clip_by_value(tf.cast(tf.floor((x - low) / width), tf.int32), 0, bins - 1)
        # Per-column histograms in one pass: column d's bin b is cell d·bins + b.
        cells = tf.reshape(index + tf.range(dims)[None] * bins, [-1])
        counts = tf.math.unsorted_segment_sum(tf.ones_like(cells, x.dtype), cells,
                                              dims * bins)
        counts = tf.reshape(counts, [dims, bins])
        return tf.cumsum(counts, axis=1) / tf.cast(tf.shape(x)[0], x.dtype), index

    source_cdf, source_bin = cdf(source)
    target_cdf, _ = cdf(target)
    # Source value -> its CDF level (within its bin, linearly) -> target bin edge at that level.
    columns = tf.broadcast_to(tf.range(tf.shape(source)[1])[None], tf.shape(source_bin))
    upper_level = tf.gather_nd(source_cdf, tf.stack([columns, source_bin], -1))
    lower_level = tf.gather_nd(tf.pad(source_cdf, [[0, 0], [1, 0]])[:, :-1],
                               tf.stack([columns, source_bin], -1))
    within = (source - (low + tf.cast(source_bin, source.dtype) * width)) / width
    level = lower_level + (upper_level - lower_level) * tf.clip_by_value(within, 0.0, 1.0)
    # Inverse target CDF: first bin whose CDF reaches the level, interpolated inside it;
    # worked out per column ([C, N]) and transposed back as floats: an integer transpose
    # makes oneDNN log an error line on some CPUs.
    level = tf.transpose(level)
    target_bin = tf.minimum(tf.searchsorted(target_cdf, level), bins - 1)
    t_upper = tf.gather(target_cdf, target_bin, batch_dims=1)
    t_lower = tf.gather(tf.pad(target_cdf, [[0, 0], [1, 0]])[:, :-1], target_bin, batch_dims=1)
    fraction = tf.math.divide_no_nan(level - t_lower, t_upper - t_lower)
    return tf.transpose(low[:, None]
                        + (tf.cast(target_bin, source.dtype) + fraction) * width[:, None])


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
    a = tf.sort(tf.matmul(source, directions), axis=0)
    b = _quantiles(tf.sort(tf.matmul(target, directions), axis=0), tf.shape(source)[0])
    return tf.reduce_mean(tf.square(a - b))
