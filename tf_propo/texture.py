"""Texture statistics as small pure functions: Gram matrices, the texture loss, its closed-form
gradient with respect to the features, and sample diversity.

The loss is the authors' (their released code, as Gatys et al.'s): for each layer l with C
channels and N = H·W positions,

    G(l) = Fᵀ F / N
    L_l  = (coef / 4) · mean over the C×C entries of (G(l) − Ĝ(l))²      (coef = 1e5)
    L    = Σ_l L_l, per sample

i.e. w_l = 1e5 / (4 C²) times the squared Frobenius norm; without the 1/C² the deep layers
dominate and pixel optimisation stalls. Everything here is computed in float32 whatever the
Keras dtype policy: bfloat16 Grams lose the small differences the loss is made of.

Features are [B, H, W, C] tensors; Grams [B, C, C]. A target Gram may have batch 1 and
broadcast over a batch of images. Written in keras.ops, so the same functions serve the
TensorFlow graphs (training, export) and Keras' JAX backend (train_jax, on hosts where
TensorFlow has no GPU build).
"""

from keras import ops

# The authors' "conv1_1 (after ReLU), pool1 .. pool4" on the average-pooling VGG19.
TEXTURE_LAYERS = ("relu1_1", "pool1", "pool2", "pool3", "pool4")
LAYER_COEFFICIENT = 1e5
# Diversity: mean over sample pairs of the per-position L1 distance (summed over channels) of
# relu4_1 features. The paper does not say which layer; this one is fixed here for good.
DIVERSITY_LAYER = "relu4_1"


def _positions_by_channels(features):
    """[B, H, W, C] -> [B, H·W, C] in float32. Grams as batched matmuls of this: TensorFlow's
    CPU einsum (and its gradient) was 1.6x slower for the same products, and they were 40%
    of a bfloat16 training step."""
    features = ops.cast(features, "float32")
    shape = ops.shape(features)
    return ops.reshape(features, (shape[0], -1, shape[3]))


def gram_matrix(features):
    """[B, H, W, C] -> [B, C, C], Fᵀ F / (H·W), in float32."""
    flat = _positions_by_channels(features)
    positions = ops.cast(ops.shape(flat)[1], "float32")
    return ops.matmul(ops.swapaxes(flat, 1, 2), flat) / positions


def gram_matrices(features, layers=TEXTURE_LAYERS):
    """{layer: Gram} for a dict of features, e.g. a target's statistics."""
    return {layer: gram_matrix(features[layer]) for layer in layers}


def layer_texture_loss(gram, target_gram, coefficient=LAYER_COEFFICIENT):
    """(coef / 4) · mean((G − Ĝ)²) over the C×C entries: one value per sample, [B]."""
    difference = ops.cast(gram, "float32") - ops.cast(target_gram, "float32")
    return coefficient / 4.0 * ops.mean(ops.square(difference), axis=[-2, -1])


def gram_loss(grams, target_grams, layers=TEXTURE_LAYERS):
    """(total [B], {layer: [B]}) of Grams against target Grams on `layers`."""
    per_layer = {layer: layer_texture_loss(grams[layer], target_grams[layer])
                 for layer in layers}
    return sum(per_layer.values()), per_layer


def texture_loss(features, target_grams, layers=TEXTURE_LAYERS):
    """(total [B], {layer: [B]}) of features against target Grams on `layers`."""
    return gram_loss(gram_matrices(features, layers), target_grams, layers)


def feature_gradient(features, target_gram, coefficient=LAYER_COEFFICIENT, gram=None):
    """∂L_l / ∂F(l) in closed form: coef / (C²·N) · F (G − Ĝ), shape [B, H, W, C], float32.

    From L_l = w ‖FᵀF/N − Ĝ‖²_F with w = coef / (4C²): ∂L_l/∂F = (4w/N) F (G − Ĝ). No autodiff,
    so graphs that use it (the pseudo optimizers, exported models) have no gradient ops.
    `gram`: the features' Gram if already computed (for the loss), so training backpropagates
    through one Gram per layer, not two.
    """
    shape = ops.shape(features)
    flat = _positions_by_channels(features)
    positions = ops.cast(ops.shape(flat)[1], "float32")
    num_channels = ops.cast(shape[3], "float32")
    gram = gram_matrix(features) if gram is None else gram
    difference = gram - ops.cast(target_gram, "float32")
    scale = coefficient / (num_channels * num_channels * positions)
    return ops.reshape(scale * ops.matmul(flat, difference), shape)


def feature_gradients(features, target_grams, layers=TEXTURE_LAYERS, grams=None):
    """{layer: ∂L_l/∂F(l)}: each layer's own (local) gradient, as the pseudo optimizers see it
    (`grams`: the features' Grams where already computed)."""
    grams = grams or {}
    return {layer: feature_gradient(features[layer], target_grams[layer],
                                    gram=grams.get(layer)) for layer in layers}


def diversity(features):
    """E_{i≠j} mean over positions of Σ_c |F_i − F_j| for a batch of K ≥ 2 samples [K,H,W,C]
    of one target. Higher means the samples differ more."""
    features = ops.cast(features, "float32")
    count = ops.shape(features)[0]
    pairwise = ops.expand_dims(features, 1) - ops.expand_dims(features, 0)
    distances = ops.mean(ops.sum(ops.abs(pairwise), axis=-1), axis=[-2, -1])
    pairs = ops.cast(count * (count - 1), "float32")
    return ops.sum(distances) / pairs


def sliced_directions(channels, count, seed=0):
    """`count` fixed random unit directions [channels, count] (float32), for
    sliced_wasserstein; the same for a given (channels, count, seed)."""
    import numpy as np

    directions = np.random.default_rng(seed).standard_normal((channels, count))
    return (directions / np.linalg.norm(directions, axis=0, keepdims=True)).astype(np.float32)


def sorted_projections(features, directions):
    """[B, H·W, K]: each sample's features projected on `directions` [C, K], sorted over
    positions (a target's can be computed once and reused)."""
    features = ops.cast(features, "float32")
    shape = ops.shape(features)
    flat = ops.reshape(features, (shape[0], -1, shape[-1]))
    return ops.sort(ops.swapaxes(ops.matmul(flat, directions), 1, 2), axis=-1)


def sliced_wasserstein(features, target_sorted, directions):
    """Sliced W2² per sample [B] between the distribution of `features` [B, H, W, C] over
    positions and the target's (sorted_projections of a target of the same size): the mean over
    directions and quantiles of the squared difference of sorted projections.

    A Gram matrix can be matched by a few extreme values (a dark blob matches a dark
    texture's second moments); a distribution cannot, which is why a sliced term beside the
    Gram loss keeps trained pseudo optimizers from making such blobs."""
    difference = sorted_projections(features, directions) - ops.cast(target_sorted, "float32")
    return ops.mean(ops.square(difference), axis=[1, 2])
