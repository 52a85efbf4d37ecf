"""Texture statistics as small pure functions: Gram matrices, the texture loss, its closed-form
gradient with respect to the features, and sample diversity.

The loss is the authors' (PAPER.md, DESIGN.md §1): for each layer l with C channels and
N = H·W positions,

    G(l) = Fᵀ F / N
    L_l  = (coef / 4) · mean over the C×C entries of (G(l) − Ĝ(l))²      (coef = 1e5)
    L    = Σ_l L_l, per sample

i.e. w_l = 1e5 / (4 C²) times the squared Frobenius norm; without the 1/C² the deep layers
dominate and pixel optimisation stalls. Everything here is computed in float32 whatever the
Keras dtype policy: bfloat16 Grams lose the small differences the loss is made of.

Features are [B, H, W, C] tensors; Grams [B, C, C]. A target Gram may have batch 1 and
broadcast over a batch of images.
"""

import tensorflow as tf

# The authors' "conv1_1 (after ReLU), pool1 .. pool4" on the average-pooling VGG19.
TEXTURE_LAYERS = ("relu1_1", "pool1", "pool2", "pool3", "pool4")
LAYER_COEFFICIENT = 1e5
# Diversity: mean over sample pairs of the per-position L1 distance (summed over channels) of
# relu4_1 features. The paper does not say which layer; this one is fixed here for good.
DIVERSITY_LAYER = "relu4_1"


def gram_matrix(features):
    """[B, H, W, C] -> [B, C, C], Fᵀ F / (H·W), in float32."""
    features = tf.cast(features, tf.float32)
    shape = tf.shape(features)
    positions = tf.cast(shape[1] * shape[2], tf.float32)
    return tf.einsum("bhwc,bhwd->bcd", features, features) / positions


def gram_matrices(features, layers=TEXTURE_LAYERS):
    """{layer: Gram} for a dict of features, e.g. a target's statistics."""
    return {layer: gram_matrix(features[layer]) for layer in layers}


def layer_texture_loss(gram, target_gram, coefficient=LAYER_COEFFICIENT):
    """(coef / 4) · mean((G − Ĝ)²) over the C×C entries: one value per sample, [B]."""
    difference = tf.cast(gram, tf.float32) - tf.cast(target_gram, tf.float32)
    return coefficient / 4.0 * tf.reduce_mean(tf.square(difference), axis=[-2, -1])


def texture_loss(features, target_grams, layers=TEXTURE_LAYERS):
    """(total [B], {layer: [B]}) of features against target Grams on `layers`."""
    per_layer = {layer: layer_texture_loss(gram_matrix(features[layer]), target_grams[layer])
                 for layer in layers}
    return tf.add_n(list(per_layer.values())), per_layer


def feature_gradient(features, target_gram, coefficient=LAYER_COEFFICIENT):
    """∂L_l / ∂F(l) in closed form: coef / (C²·N) · F (G − Ĝ), shape [B, H, W, C], float32.

    From L_l = w ‖FᵀF/N − Ĝ‖²_F with w = coef / (4C²): ∂L_l/∂F = (4w/N) F (G − Ĝ). No autodiff,
    so graphs that use it (the pseudo optimizers, exported models) have no gradient ops.
    """
    features = tf.cast(features, tf.float32)
    shape = tf.shape(features)
    positions = tf.cast(shape[1] * shape[2], tf.float32)
    num_channels = tf.cast(shape[3], tf.float32)
    difference = gram_matrix(features) - tf.cast(target_gram, tf.float32)
    scale = coefficient / (num_channels * num_channels * positions)
    return scale * tf.einsum("bhwc,bcd->bhwd", features, difference)


def feature_gradients(features, target_grams, layers=TEXTURE_LAYERS):
    """{layer: ∂L_l/∂F(l)}: each layer's own (local) gradient, as the pseudo optimizers see it."""
    return {layer: feature_gradient(features[layer], target_grams[layer]) for layer in layers}


def diversity(features):
    """E_{i≠j} mean over positions of Σ_c |F_i − F_j| for a batch of K ≥ 2 samples [K,H,W,C]
    of one target. Higher means the samples differ more."""
    features = tf.cast(features, tf.float32)
    count = tf.shape(features)[0]
    distances = tf.reduce_mean(
        tf.reduce_sum(tf.abs(features[:, None] - features[None, :]), axis=-1), axis=[-2, -1])
    pairs = tf.cast(count * (count - 1), tf.float32)
    return tf.reduce_sum(distances) / pairs
