"""Covariance matching of feature sets: whiten the source, colour with the target.

Features are [N, C] (N samples, C channels). After `match_covariance(source, target)` the
source has the target's mean and covariance (up to `eps`). The C×C decompositions are small
and run in float64 by default, which keeps rank-deficient features (dead ReLU channels) stable;
the [N, C] products stay in the features' dtype.

Methods:
  cholesky  W = L_s^{-T}, colour by L_t^T               (cheapest; not rotation-invariant)
  eigh      W = U_s Λ_s^{-1/2} U_sᵀ, colour by U_t Λ_t^{1/2} U_tᵀ  (symmetric, ZCA)
  pca       eigh restricted to the target's top-k principal directions holding
            `variance_share` of its variance; the rest of the source is left as it is
            (Risser's PCA speed-up keeps 22/64 .. 260/512 components at 90%).
"""

import tensorflow as tf

METHODS = ("cholesky", "eigh", "pca")


def mean_and_covariance(features, dtype=tf.float64):
    """(mean [C], covariance [C, C]) of features [N, C], in `dtype`."""
    x = tf.cast(features, dtype)
    mean = tf.reduce_mean(x, axis=0)
    centered = x - mean
    count = tf.cast(tf.shape(x)[0], dtype)
    return mean, tf.matmul(centered, centered, transpose_a=True) / count


def _regularised(cov, eps):
    return cov + eps * tf.eye(tf.shape(cov)[0], dtype=cov.dtype)


def _sym_power(cov, power, eps):
    """cov^power for a symmetric PSD matrix, eigenvalues floored at eps."""
    values, vectors = tf.linalg.eigh(cov)
    values = tf.maximum(values, eps) ** power
    return tf.matmul(vectors * values, vectors, transpose_b=True)


def covariance_transform(source_cov, target_cov, method="cholesky", eps=1e-5):
    """The C×C matrix T with Tᵀ C_s T = C_t (row-vector convention: y = x T)."""
    if method == "cholesky":
        ls = tf.linalg.cholesky(_regularised(source_cov, eps))
        lt = tf.linalg.cholesky(_regularised(target_cov, eps))
        # Whitening x L_s^{-T}: solve L_s Z = I for Z = L_s^{-1}, whiten with Zᵀ.
        whiten = tf.transpose(tf.linalg.triangular_solve(ls, tf.eye(tf.shape(ls)[0],
                                                                      dtype=ls.dtype)))
        return tf.matmul(whiten, lt, transpose_b=True)
    if method == "eigh":
        return tf.matmul(_sym_power(source_cov, -0.5, eps), _sym_power(target_cov, 0.5, eps))
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def principal_basis(cov, variance_share=0.9):
    """[C, k] top eigenvectors of cov holding `variance_share` of its trace (k ≥ 1)."""
    values, vectors = tf.linalg.eigh(cov)
    values, vectors = values[::-1], vectors[:, ::-1]
    share = tf.cumsum(tf.maximum(values, 0.0)) / tf.maximum(tf.reduce_sum(values), 1e-30)
    k = tf.minimum(tf.reduce_sum(tf.cast(share < variance_share, tf.int32)) + 1,
                   tf.shape(values)[0])
    return vectors[:, :k]


def match_covariance(source, target, method="cholesky", eps=1e-5, variance_share=0.9,
                     dtype=tf.float64):
    """Source features [N, C] moved to the target's [M, C] mean and covariance."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    mean_s, cov_s = mean_and_covariance(source, dtype)
    mean_t, cov_t = mean_and_covariance(target, dtype)
    x = tf.cast(source, dtype) - mean_s
    if method != "pca":
        return tf.cast(tf.matmul(x, covariance_transform(cov_s, cov_t, method, eps))
                       + mean_t, source.dtype)
    basis = principal_basis(cov_t, variance_share)
    reduce = lambda cov: tf.matmul(basis, tf.matmul(cov, basis), transpose_a=True)  # noqa
    transform = covariance_transform(reduce(cov_s), reduce(cov_t), "eigh", eps)
    inside = tf.matmul(x, basis)
    outside = x - tf.matmul(inside, basis, transpose_b=True)
    matched = tf.matmul(tf.matmul(inside, transform), basis, transpose_b=True)
    return tf.cast(matched + outside + mean_t, source.dtype)
