"""The VGG19 encoder as a Keras model that returns named taps.

Layer names follow the Caffe / Gatys convention: conv{b}_{i} (pre-activation), relu{b}_{i},
pool{b}. The authors' texture layers "conv1_1, pool1 .. pool4" mean conv1_1 AFTER its ReLU,
i.e. the taps relu1_1, pool1, pool2, pool3, pool4 here (texture.TEXTURE_LAYERS).

The model takes RGB in [0, 1] (any spatial size) and does its own preprocessing in a leading
1x1 convolution named `preprocess`: for the normalised weights it is the network's own first
layer (RGB [0,1] -> mean-subtracted BGR 0..255); for Caffe/ImageNet weights the equivalent map
is written into it (weights.py). The model is cut at the deepest tap asked for.

Weights are loaded by tf_propo.weights; this module knows only the architecture.
"""

import keras

BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))

# Convolution name -> (input channels, output channels), in network order.
CONV_SHAPES = {"preprocess": (3, 3)}
LAYER_ORDER = ["preprocess"]
_previous = 3
for _block, _count, _channels in BLOCKS:
    for _i in range(1, _count + 1):
        CONV_SHAPES[f"conv{_block}_{_i}"] = (_previous, _channels)
        LAYER_ORDER += [f"conv{_block}_{_i}", f"relu{_block}_{_i}"]
        _previous = _channels
    LAYER_ORDER.append(f"pool{_block}")
CONV_NAMES = tuple(CONV_SHAPES)
LAYER_ORDER = tuple(LAYER_ORDER)

POOLINGS = ("avg", "max")
PADDINGS = ("zeros", "reflect", "circular")


def channels(layer):
    """Number of channels of a named layer's output."""
    check_layer(layer)
    block = int(layer[4])  # conv{b}_{i}, relu{b}_{i} and pool{b} all carry the block there
    return dict((b, c) for b, _, c in BLOCKS)[block]


def downsampling(layer):
    """Spatial stride of a named layer relative to the input (1, 2, 4, 8, 16 or 32)."""
    check_layer(layer)
    return 2 ** sum(1 for name in LAYER_ORDER[:LAYER_ORDER.index(layer) + 1]
                    if name.startswith("pool"))


def receptive_field(layer):
    """Side in px of the input window one position of a named layer sees (3x3 convolutions,
    2x2 poolings): 124 for pool4."""
    check_layer(layer)
    side, stride = 1, 1
    for name in LAYER_ORDER[1:LAYER_ORDER.index(layer) + 1]:
        if name.startswith("conv"):
            side += 2 * stride
        elif name.startswith("pool"):
            side += stride
            stride *= 2
    return side


def check_layer(layer):
    if layer not in LAYER_ORDER or layer == "preprocess":
        raise ValueError(f"unknown VGG19 layer {layer!r}; known: conv1_1 .. relu5_4, pool1 .. "
                         "pool5")


def deepest(layers):
    """The layer of `layers` that comes last in the network."""
    for layer in layers:
        check_layer(layer)
    return max(layers, key=LAYER_ORDER.index)


def features_with_probes(encoder, image, probes):
    """{layer: output} of `encoder` (build_encoder's model) on `image` with probes[layer]
    added to that layer's output on the way, for every layer in `probes`.

    With zero probes these are the encoder's features, and the gradient of any function of
    them with respect to probes[l] is its total derivative with respect to layer l's output,
    through the deeper layers too: what a gradient tape on the intermediate tensors gives in
    TensorFlow, and what jax.grad can only reach through an input. The encoder is a chain, so
    its layers run in order.
    """
    last = deepest(probes)
    x, features = image, {}
    for layer in encoder.layers[1:]:  # [0] is the InputLayer
        x = layer(x)
        if layer.name in probes:
            x = x + probes[layer.name]
            features[layer.name] = x
        if layer.name == last:
            break
    return features


class BorderPad(keras.layers.Layer):
    """Pads height and width by one pixel: "reflect" mirrors (the AdaIN / WCT decoders'
    padding); "circular" wraps around, which makes every layer exactly translation-equivariant
    on a torus: no border for a network to find, and tileable textures."""

    def __init__(self, mode, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("reflect", "circular"):
            raise ValueError(f"BorderPad mode must be reflect or circular, got {mode!r}")
        self.mode = mode

    def call(self, x):
        if self.mode == "reflect":
            return keras.ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
        return circular_pad(circular_pad(x, 1), 2)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def _along(x, axis, start, stop):
    index = [slice(None)] * 4
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def circular_pad(x, axis):
    """[x[-1], x[0], …, x[n−1], x[0]] along `axis` (1 or 2) of a [B, H, W, C] tensor.

    Autodiff of the slices would build a full-size zero tensor per wrapped row and add them
    (TensorFlow's StridedSliceGrad + AddN): with circular padding before every convolution
    that was a fifth of a bfloat16 training step on a CPU. The gradient below folds the two
    wrapped rows back onto their sources in one concatenation. It needs the size along `axis`
    to be known and ≥ 2, true whenever a graph is traced for fixed sizes; otherwise autodiff.
    """
    def pad(x):
        return keras.ops.concatenate(
            [_along(x, axis, -1, None), x, _along(x, axis, 0, 1)], axis=axis)

    size = x.shape[axis]
    if size is None or size < 2:
        return pad(x)

    @keras.ops.custom_gradient
    def folded(x):
        def gradient(*args, upstream=None):
            g = args[0] if upstream is None else upstream
            return keras.ops.concatenate([
                _along(g, axis, 1, 2) + _along(g, axis, -1, None),
                _along(g, axis, 2, -2),
                _along(g, axis, -2, -1) + _along(g, axis, 0, 1)], axis=axis)
        return pad(x), gradient

    return folded(x)


def build_encoder(taps, pooling="avg", padding="zeros", dtype=None, name="vgg19"):
    """VGG19 up to the deepest of `taps`, returning {tap: tensor}. Untrained: see weights.py.

    pooling: "avg" (Gatys and the authors' texture loss) or "max" (the classifier's).
    padding: "zeros" ('SAME', as Gatys' Caffe model and the authors' loss), "reflect" or
        "circular" (BorderPad).
    dtype: a Keras dtype policy name ("float32", "mixed_bfloat16", ...) or None for the global
        policy; evaluation builds a float32 twin whatever the training policy.
    """
    taps = tuple(dict.fromkeys(taps))
    if not taps:
        raise ValueError("build_encoder needs at least one tap")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    last = LAYER_ORDER.index(deepest(taps))
    # The encoder is frozen: there are no float32 master weights to keep, so under a mixed
    # policy its weights are stored in the compute dtype (no casts of ~20M weights per call).
    policy = keras.dtype_policies.get(dtype) if dtype else keras.config.dtype_policy()
    dtype = policy.compute_dtype if policy.compute_dtype != policy.variable_dtype else dtype

    image = keras.Input(shape=(None, None, 3), name="image")
    x = keras.layers.Conv2D(3, 1, name="preprocess", dtype=dtype)(image)
    outputs = {}
    for layer in LAYER_ORDER[1:last + 1]:
        if layer.startswith("conv"):
            if padding != "zeros":
                x = BorderPad(padding, name=f"pad{layer[4:]}", dtype=dtype)(x)
            x = keras.layers.Conv2D(CONV_SHAPES[layer][1], 3,
                                    padding="same" if padding == "zeros" else "valid",
                                    name=layer, dtype=dtype)(x)
        elif layer.startswith("relu"):
            x = keras.layers.ReLU(name=layer, dtype=dtype)(x)
        else:
            pool = keras.layers.AveragePooling2D if pooling == "avg" else keras.layers.MaxPooling2D
            x = pool(2, strides=2, name=layer, dtype=dtype)(x)
        if layer in taps:
            outputs[layer] = x
    model = keras.Model(image, {tap: outputs[tap] for tap in taps}, name=name)
    model.trainable = False
    return model


def rebuilt(encoder, taps, padding, pooling="avg"):
    """An encoder built by build_encoder, built anew with `taps` and `padding` under its
    dtype policy, holding its weights (copied by layer name): the same network padded
    otherwise, e.g. circularly for textures that tile."""
    dtype = encoder.get_layer("conv1_1").dtype_policy.name
    twin = build_encoder(taps, pooling=pooling, padding=padding, dtype=dtype)
    for layer in twin.layers:
        if layer.weights:
            layer.set_weights(encoder.get_layer(layer.name).get_weights())
    return twin
