"""Per-layer decoders: VGG19 features at relu{b}_1 back to an RGB image.

The optimal-transport pipeline edits features and needs a way back to pixels (Risser 2020,
Universal Style Transfer). Each decoder mirrors the encoder from its layer down to the image,
thinner: for relu{k}_1, blocks b = k .. 2 each end with a 3×3 conv to block b−1's width and a
nearest ×2 upsampling; block 1 has one conv and the 3-channel output conv. Every block below the
input has `convs` 3×3 convolutions (VGG has 2–4; two are enough to invert one pooling), all
reflect-padded (as the WCT/AdaIN decoders: no border artefacts) with ReLU. Width at block b =
VGG's channels × `width`.

Trained (python -m tf_propo.train --flagfile=configs/decoders.flags) on generic images with
  L = mean (x̂ − x)² + feature_weight · mean (Φ_l(x̂) − Φ_l(x))²
(pixel reconstruction + the same layer's feature reconstruction, WCT's loss), all decoders at
once from one encoder pass.
"""

import keras
import tensorflow as tf

from tf_propo import vgg

DECODER_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# The encoder the decoders invert: the normalised VGG19 with max pooling (the classifier's, as
# Risser's and WCT's encoders) and zero padding.
ENCODER_POOLING = "max"
# The ×2 upsampling of each decoder block: nearest (the bundled decoders') or bilinear.
# Neither removes the faint grid the deeper decoders draw at their stride (docs/training.md);
# the synthesis takes it out of every decode (tf_propo.grid.remove_periodic).
UPSAMPLING = ("nearest", "bilinear")


def block_of(layer):
    if layer not in DECODER_LAYERS:
        raise ValueError(f"decoders exist for {', '.join(DECODER_LAYERS)}, not {layer!r}")
    return int(layer[4])


def _conv(x, channels, name, padding, activation=True, dtype=None):
    x = vgg.BorderPad(padding, name=f"{name}_pad")(x)
    x = keras.layers.Conv2D(channels, 3, padding="valid", name=name, dtype=dtype)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if activation else x


def _upsample(x, name, padding, upsampling):
    if upsampling == "bilinear" and padding == "circular":
        # Keras' bilinear resize clamps at the borders; a tileable image must wrap instead:
        # pad one cell around, resize, and crop the two pixels that came from the padding.
        x = vgg.BorderPad("circular", name=f"{name}_wrap")(x)
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=name)(x)
        return keras.layers.Cropping2D(2, name=f"{name}_crop")(x)
    return keras.layers.UpSampling2D(2, interpolation=upsampling, name=name)(x)


def build_decoder(layer, width=0.5, convs=2, name=None, padding="reflect",
                  upsampling="nearest"):
    """Decoder of one layer: features [B, H/s, W/s, C] -> image [B, H, W, 3] (≈ [0, 1]).
    padding: "reflect" (trained so) or "circular" (vgg.BorderPad). upsampling: "nearest"
    or "bilinear" (keras.layers.UpSampling2D's interpolation)."""
    block = block_of(layer)
    widths = {b: max(8, round(c * width)) for b, _, c in vgg.BLOCKS}
    features = keras.Input((None, None, vgg.channels(layer)), name=layer)
    x = features
    for b in range(block, 1, -1):
        for i in range(convs - 1 if b < block else 0):
            x = _conv(x, widths[b], f"block{b}_conv{i}", padding)
        x = _conv(x, widths[b - 1], f"block{b}_out", padding)
        x = _upsample(x, f"block{b}_up", padding, upsampling)
    if block == 1:
        x = _conv(x, widths[1], "block1_in", padding)
    else:
        for i in range(convs - 1):
            x = _conv(x, widths[1], f"block1_conv{i}", padding)
    # float32 output whatever the policy: images are compared and written in float32.
    image = _conv(x, 3, "to_rgb", padding, activation=False, dtype="float32")
    return keras.Model(features, image, name=name or f"decoder_{layer}")


def reconstruction_losses(images, features, decoded, encoded, feature_weight=1.0):
    """{layer: (pixel, feature) per-sample losses [B]} of decoded images against the originals.

    images [B, H, W, 3]; features/encoded {layer: [B, h, w, C]} of the originals and of the
    decoded images; decoded {layer: [B, H, W, 3]}."""
    out = {}
    for layer, image in decoded.items():
        pixel = tf.reduce_mean(tf.square(tf.cast(image, tf.float32) - images), axis=[1, 2, 3])
        feature = tf.reduce_mean(tf.square(tf.cast(encoded[layer], tf.float32)
                                           - tf.cast(features[layer], tf.float32)),
                                 axis=[1, 2, 3])
        out[layer] = (pixel, feature_weight * feature)
    return out


class DecoderFamily(keras.Model):
    """One decoder per layer over a shared frozen encoder (built by the caller with
    tf_propo.weights.pretrained_encoder(layers, pooling=ENCODER_POOLING)).

    call(images) -> {"decoded": {layer: image}, "losses": {layer: (pixel [B], feature [B])}}.
    """

    def __init__(self, encoder, layers=DECODER_LAYERS, width=0.5, convs=2,
                 feature_weight=1.0, upsampling="nearest", **kwargs):
        super().__init__(**kwargs)
        for layer in layers:
            block_of(layer)
        self.layers_decoded = tuple(sorted(layers, key=vgg.LAYER_ORDER.index))
        self.encoder = encoder
        self.feature_weight = feature_weight
        if upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {upsampling!r}")
        self.width, self.convs, self.upsampling = width, convs, upsampling
        self.decoders = {layer: build_decoder(layer, width, convs, upsampling=upsampling)
                         for layer in layers}
        self._encoders = self._per_layer(encoder)

    def _per_layer(self, encoder):
        """{layer: the encoder up to that layer} for every decoded layer."""
        return {layer: keras.Model(encoder.input, encoder.get_layer(layer).output)
                for layer in self.layers_decoded}

    def padded(self, padding):
        """({layer: encoder}, {layer: decoder}) for synthesis, padding by `padding` with the
        trained weights: "reflect" (the decoders as trained; the encoder, trained with zeros,
        then draws no frames, since zero padding makes border features unlike any in the
        target) or "circular" (both wrap around: textures that tile)."""
        if padding not in ("reflect", "circular"):
            raise ValueError(f"padding must be reflect or circular, got {padding!r}")
        encoder = vgg.rebuilt(self.encoder, self.layers_decoded, padding, ENCODER_POOLING)
        if padding == "reflect":  # the trained decoders pad so already
            return self._per_layer(encoder), dict(self.decoders)
        decoders = {}
        for layer, trained in self.decoders.items():
            decoders[layer] = build_decoder(layer, self.width, self.convs, padding=padding,
                                            upsampling=self.upsampling)
            decoders[layer].set_weights(trained.get_weights())
        return self._per_layer(encoder), decoders

    @property
    def networks(self):
        """The trainable networks by checkpoint name."""
        return dict(self.decoders)

    def encode(self, images, layer):
        return self._encoders[layer](images)

    def call(self, images, training=False):
        images = tf.cast(images, tf.float32)
        features = self.encoder(images)
        decoded = {layer: self.decoders[layer](features[layer], training=training)
                   for layer in self.layers_decoded}
        encoded = {layer: self.encode(decoded[layer], layer) for layer in self.layers_decoded}
        losses = reconstruction_losses(images, features, decoded, encoded, self.feature_weight)
        return {"decoded": decoded, "losses": losses}
