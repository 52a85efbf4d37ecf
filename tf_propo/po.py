"""Pseudo optimizers (Shi & Qiao, CVPR 2020) as Keras models.

PseudoOptimizer: one step Δ of the pre-sigmoid image from the texture-loss gradients at its
layers, the authors' `build_stage` (po/improved_model.py): a decoder from the deepest layer to
the shallowest, width at each scale = that layer's VGG channels × `width`; per layer, deepest
first:
    branch = conv3×3 → norm → act → conv3×3            (of that layer's gradient)
    delta  = branch                   (deepest)
           = branch + up(delta)       (others; up = act → nearest ×2 → conv3×3; an ADD)
    delta  = norm(delta), then two residual blocks x + norm(conv(act(norm(conv(act(x))))))
and finally act → conv3×3 (3 channels, with bias) = Δ. Norm: instance norm with affine γ/β
(eps 1e-5); act: LeakyReLU 0.2; convolutions pad with zeros, have no bias, He-normal init.

ProgressiveOptimizer: K stages x[0] (noise) → x[1] → … → x[K], stage s its own
PseudoOptimizer on its own layer set (ProPO: the first s+1 of the texture layers). PO and AdaPO
are the one-stage case on all layers (AdaPO is trained over many targets; the target enters
only through its Gram matrices, so it works on targets it never saw).

Image parameterisation as the authors': image = sigmoid(pre); x[0]: pre ~ U(−1, 1); each stage
pre ← pre + Δ. The stage inputs are the closed-form per-layer gradients ∂L_l/∂F_l
(texture.feature_gradient, grad_mode "local": no gradient ops, so the model exports) or the
total derivative through the deeper layers by autodiff (grad_mode "total", the authors'
choice; it needs a gradient tape inside the forward pass).

The models are written in keras.ops and import TensorFlow only where they need it (the
seeded noise of the exported graphs; grad_mode "total" takes its inner gradient with a tape
in TensorFlow and jax.grad in JAX), so Keras' JAX backend can train them too
(tf_propo.train_jax).
"""

import weakref

import keras
from keras import ops

from tf_propo import shapes
from tf_propo import texture
from tf_propo import vgg

GRAD_MODES = ("local", "total")


def start_noise(seed, size, samples=1):
    """x[0]'s pre-sigmoid image U(−1, 1), [samples, height, width, 3] for size = side or
    (height, width), from `seed`: the noise of `synthesize --seed` and of the exported
    models, so both give the same texture."""
    import tensorflow as tf

    height, width = shapes.sides(size)
    seed = tf.cast(seed, tf.int64)
    return tf.random.stateless_uniform([samples, height, width, 3],
                                       tf.stack([seed, tf.constant(0, tf.int64)]),
                                       minval=-1.0, maxval=1.0)


def image_logits(image):
    """The pre-sigmoid image of `image` in [0, 1], clipped half an 8-bit level inside (0, 1)
    so that black and white map to finite values (±6.2)."""
    eps = 0.5 / 255.0
    image = ops.clip(ops.cast(image, "float32"), eps, 1.0 - eps)
    return ops.log(image) - ops.log1p(-image)


def _gradient(function, argument):
    """(∂function(argument)[0] / ∂argument, function(argument)[1]) for a function returning
    (scalar, auxiliary) on the backend Keras runs on: a gradient tape in TensorFlow,
    jax.grad in JAX."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.grad(function, has_aux=True)(argument)
    import tensorflow as tf

    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(argument)
        value, aux = function(argument)
    return tape.gradient(value, argument), aux


def stage_layers(stages, layers=texture.TEXTURE_LAYERS):
    """ProPO's layer sets: stage s uses the first min(s + 1, L) layers; one stage uses all."""
    layers = tuple(layers)
    if stages == 1:
        return (layers,)
    return tuple(layers[:min(s + 1, len(layers))] for s in range(stages))


PADDINGS = vgg.PADDINGS


def _conv(x, channels, name, padding, use_bias=False, dtype=None):
    """3×3 convolution, padded with zeros ('same'), by reflection or circularly."""
    if padding != "zeros":
        x = vgg.BorderPad(padding, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(channels, 3, padding="same" if padding == "zeros" else "valid",
                               use_bias=use_bias, kernel_initializer="he_normal", name=name,
                               dtype=dtype)(x)


class InstanceNormalization(keras.layers.GroupNormalization):
    """Instance norm with affine γ/β: group norm with one channel per group, computed on the
    4-D tensor (moments over H, W) instead of Keras' 5-D group reshape, which LiteRT's XNNPACK
    delegate does not take. Same variables as GroupNormalization, so checkpoints carry over."""

    def __init__(self, channels, epsilon=1e-5, **kwargs):
        kwargs.pop("groups", None)
        super().__init__(groups=channels, epsilon=epsilon, **kwargs)

    def call(self, inputs):
        x = keras.ops.cast(inputs, "float32")  # float32 statistics under mixed precision
        mean, variance = keras.ops.moments(x, axes=[1, 2], keepdims=True)
        scale = keras.ops.rsqrt(variance + self.epsilon) * keras.ops.cast(self.gamma, "float32")
        offset = keras.ops.cast(self.beta, "float32") - mean * scale
        return keras.ops.cast(x * scale + offset, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "channels": self.groups}


def _norm(channels, name):
    return InstanceNormalization(channels, epsilon=1e-5, name=name)


def _act(name):
    return keras.layers.LeakyReLU(negative_slope=0.2, name=name)


def _residual_block(x, channels, name, padding):
    y = _act(f"{name}_act1")(x)
    y = _conv(y, channels, f"{name}_conv1", padding)
    y = _norm(channels, f"{name}_norm1")(y)
    y = _act(f"{name}_act2")(y)
    y = _conv(y, channels, f"{name}_conv2", padding)
    y = _norm(channels, f"{name}_norm2")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def build_pseudo_optimizer(layers, width=1.0, padding="zeros", name="pseudo_optimizer"):
    """The PseudoOptimizer network: {layer: gradient [B, H/s, W/s, C]} -> Δ [B, H, W, 3].

    padding: "zeros" (the authors'), "reflect" or "circular". Networks trained here with zero
    or reflect padding (in the stage networks and in VGG alike) learnt to park the target's
    dark statistics in one saturated band at a fixed place along a border, the same in every
    sample: a border is a position signal they exploit. With circular padding in both there is
    no border; the same 100-step experiment gave dark blobs at noise-dependent places instead.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    layers = tuple(layers)
    order = sorted(layers, key=vgg.LAYER_ORDER.index)
    inputs = {layer: keras.Input((None, None, vgg.channels(layer)), name=layer)
              for layer in order}
    delta, deeper = None, None  # the running Δ features and the layer they come from
    for layer in reversed(order):
        channels = max(1, round(vgg.channels(layer) * width))
        x = _conv(inputs[layer], channels, f"{layer}_in1", padding)
        x = _norm(channels, f"{layer}_in_norm")(x)
        x = _act(f"{layer}_in_act")(x)
        x = _conv(x, channels, f"{layer}_in2", padding)
        if delta is not None:
            factor = vgg.downsampling(deeper) // vgg.downsampling(layer)
            up = _act(f"{layer}_up_act")(delta)
            if factor > 1:
                up = keras.layers.UpSampling2D(factor, name=f"{layer}_up")(up)
            up = _conv(up, channels, f"{layer}_up_conv", padding)
            x = keras.layers.Add(name=f"{layer}_merge")([x, up])
        x = _norm(channels, f"{layer}_norm")(x)
        for i in range(2):
            x = _residual_block(x, channels, f"{layer}_res{i}", padding)
        delta, deeper = x, layer
    if vgg.downsampling(order[0]) != 1:
        factor = vgg.downsampling(order[0])
        delta = keras.layers.UpSampling2D(factor, name="to_image_up")(delta)
    delta = _act("out_act")(delta)
    # float32 output: the step is added to the float32 pre-sigmoid image.
    delta = _conv(delta, 3, "out_conv", padding, use_bias=True, dtype="float32")
    return keras.Model(inputs, delta, name=name)


_PADDED = weakref.WeakKeyDictionary()  # {model: {padding: the model padded so}}


class ProgressiveOptimizer(keras.Model):
    """K pseudo-optimizer stages with a shared, frozen VGG encoder.

    call(inputs) with inputs = {"pre": [B, H, W, 3] pre-sigmoid start (U(−1, 1) noise),
    "target_grams": {layer: [B or 1, C, C]}} returns {"images": [x[0], …, x[K]] (each
    [B, H, W, 3] in [0, 1]), "losses": [L_0, …, L_{K−1}] (each [B]: stage s's output on
    stage s's own layers), "layer_losses": [{layer: [B]} per stage], "pre": [pre[0], …,
    pre[K]] (the float32 pre-sigmoid images: where sigmoid saturates, only they still carry a
    gradient)}. H and W must be
    multiples of 16 (pool4 and the ×2 merges).
    """

    def __init__(self, encoder, stages=5, layers=texture.TEXTURE_LAYERS, width=1.0,
                 grad_mode="local", padding="zeros", **kwargs):
        super().__init__(**kwargs)
        if grad_mode not in GRAD_MODES:
            raise ValueError(f"grad_mode must be one of {GRAD_MODES}, got {grad_mode!r}")
        self.layer_sets = stage_layers(stages, layers)
        self._texture_layers = tuple(layers)
        self.all_layers = tuple(dict.fromkeys(l for s in self.layer_sets for l in s))
        self.encoder = encoder
        self.grad_mode = grad_mode
        self.width = width
        self.stages = [build_pseudo_optimizer(s, width, padding, name=f"stage{i}")
                       for i, s in enumerate(self.layer_sets)]
        # Encoders cut at the deepest layer each pass needs, sharing the VGG weights.
        needed = [self.layer_sets[0], self.all_layers] + [
            self._pass_layers(s) for s in range(len(self.stages))]
        self._encoders = {",".join(layers): keras.Model(
            encoder.input, {l: encoder.get_layer(l).output for l in layers})
            for layers in needed}

    @property
    def networks(self):
        """The trainable networks by checkpoint name."""
        return {f"stage{i}": stage for i, stage in enumerate(self.stages)}

    def padded(self, padding):
        """This model with the same weights, padding by `padding` in its stage networks and
        its VGG: "circular" makes every pass translation-equivariant on a torus, so its
        textures tile, whatever padding it was trained with. Built once per padding."""
        variants = _PADDED.setdefault(self, {})  # not an attribute: Keras would track it
        if padding not in variants:
            encoder = vgg.rebuilt(self.encoder, self._texture_layers, padding)
            model = ProgressiveOptimizer(encoder, len(self.stages), self._texture_layers,
                                         self.width, self.grad_mode, padding)
            for name, network in model.networks.items():
                network.set_weights(self.networks[name].get_weights())
            variants[padding] = model
        return variants[padding]

    def _pass_layers(self, s):
        """Layers of the VGG pass after stage s: its own loss and stage s+1's inputs."""
        following = self.layer_sets[min(s + 1, len(self.layer_sets) - 1)]
        return tuple(dict.fromkeys(self.layer_sets[s] + following))

    def features(self, image, layers):
        """VGG features on `layers` (one of the passes prepared in __init__)."""
        return self._encoders[",".join(layers)](image)

    def _gradients(self, pre, layers, target_grams):
        """(features at x = sigmoid(pre), {layer: ∂L/∂F} on `layers`)."""
        image = ops.sigmoid(pre)
        if self.grad_mode == "local":
            features = self.features(image, layers)
            return features, texture.feature_gradients(features, target_grams, layers)
        return self._total_gradients(image, layers, target_grams)

    def _total_gradients(self, image, layers, target_grams):
        """grad_mode "total": (features, {layer: dL/dF_layer}) with L the texture loss on
        `layers` and the derivative total, through the deeper layers (the authors' choice), by
        autodiff of zero probes added to the features (vgg.features_with_probes) — a
        gradient inside the forward pass, so training backpropagates through a gradient."""
        shape = ops.shape(image)
        dtype = self.encoder.compute_dtype
        probes = {layer: ops.zeros((shape[0], shape[1] // vgg.downsampling(layer),
                                    shape[2] // vgg.downsampling(layer), vgg.channels(layer)),
                                   dtype)
                  for layer in layers}

        def loss(probes):
            features = vgg.features_with_probes(self.encoder, image, probes)
            return ops.sum(texture.texture_loss(features, target_grams, layers)[0]), features

        grads, features = _gradient(loss, probes)
        return features, {k: ops.cast(v, "float32") for k, v in grads.items()}

    def call(self, inputs, training=False):
        pre = ops.cast(inputs["pre"], "float32")
        target_grams = inputs["target_grams"]
        images, pres = [ops.sigmoid(pre)], [pre]
        losses, layer_losses = [], []
        features, grads = self._gradients(pre, self.layer_sets[0], target_grams)
        grams = None
        for s, stage in enumerate(self.stages):
            layers = self.layer_sets[s]
            if s > 0:
                if self.grad_mode == "local":
                    grads = texture.feature_gradients(features, target_grams, layers, grams)
                else:
                    features, grads = self._gradients(pre, layers, target_grams)
            pre = pre + stage(grads, training=training)
            pres.append(pre)
            images.append(ops.sigmoid(pre))
            # One VGG pass (and one Gram per layer) serves stage s's loss and stage s+1's
            # inputs.
            features = self.features(images[-1], self._pass_layers(s))
            grams = texture.gram_matrices(features, self._pass_layers(s))
            loss, per_layer = texture.gram_loss(grams, target_grams, layers)
            losses.append(loss)
            layer_losses.append(per_layer)
        return {"images": images, "losses": losses, "layer_losses": layer_losses, "pre": pres}
