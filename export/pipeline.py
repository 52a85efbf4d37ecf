"""The whole synthesis as one exportable Keras model: target image -> statistics -> texture.

    statistics(target)         target [1, H, W, 3] in [0, 1] -> {name: statistic}
    synthesize(stats, noise)   noise [B, S, S, 3] in [−1, 1] -> texture [B, S, S, 3] in [0, 1]
    call({"target", "noise"})  both, in one graph

QuiltPipeline (the default export) quilts from the target itself (tf_propo.graph_quilting):
its statistic is the exemplar, the noise its randomness. TexturePipeline holds a trained
pseudo optimizer: the VGG encoder, the Gram statistics, the closed-form feature gradients and
every stage network, no gradient ops (only grad_mode="local" models export), the noise its
pre-sigmoid start x[0]. Either way the same noise as `python -m tf_propo.synthesize --seed=S`
(one sample) comes from `po.start_noise`, so an exported pseudo optimizer reproduces the
command's texture.
"""

import keras
import tensorflow as tf

from tf_propo import graph_quilting as quilting
from tf_propo import model_dir as model_dirs
from tf_propo import po
from tf_propo import texture
from tf_propo.errors import UsageError
from tf_propo.export import polish
from tf_propo.methods import POLISH_LAYERS

# The largest target side and output size the serving signature accepts (memory bound: a
# 2048² texture through 5 stages of VGG needs ~6 GB).
MAX_TARGET_SIDE = 4096
MAX_SIZE = 2048


def resize_short_edge(image, size):
    """[1, H, W, 3] -> short edge `size` px (area filter, antialiased), in graph."""
    shape = tf.cast(tf.shape(image)[1:3], tf.float32)
    scale = size / tf.reduce_min(shape)
    new = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), 1)
    return tf.clip_by_value(tf.image.resize(image, new, method="area", antialias=True),
                            0.0, 1.0)


class TexturePipeline(keras.Model):
    """A trained ProgressiveOptimizer (po/adapo/propo) with its target statistics."""

    def __init__(self, optimizer, target_size=256, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(optimizer, po.ProgressiveOptimizer):
            raise TypeError("TexturePipeline wraps a ProgressiveOptimizer")
        if optimizer.grad_mode != "local":
            raise UsageError("only grad_mode=local models export: grad_mode=total needs "
                             "gradient ops inside the model")
        self.optimizer_model = optimizer
        self.target_size = target_size
        self.layers_used = optimizer.all_layers
        self.built = True  # every network inside is a built functional model

    def statistics(self, target, resize=True):
        """Gram matrices {layer: [1, C, C]} of a target [1, H, W, 3] in [0, 1]; with
        `resize`, the short edge is first brought to target_size (synthesize's default)."""
        target = tf.cast(target, tf.float32)
        if resize and self.target_size:
            target = resize_short_edge(target, self.target_size)
        features = self.optimizer_model.features(target, self.layers_used)
        return texture.gram_matrices(features, self.layers_used)

    def synthesize(self, grams, noise):
        out = self.optimizer_model({"pre": tf.cast(noise, tf.float32), "target_grams": grams})
        return out["images"][-1]

    def call(self, inputs, resize=True):
        return self.synthesize(self.statistics(inputs["target"], resize), inputs["noise"])

    def statistics_specs(self):
        """{name: unbatched TensorSpec} of the statistics a SavedModel takes and returns."""
        return _gram_specs(self.layers_used)

    def named_statistics(self, grams):
        """statistics() output -> {name: unbatched tensor} (statistics_specs' names)."""
        return _named_grams(grams, self.layers_used)

    def from_named_statistics(self, named):
        """named_statistics' form -> what synthesize takes."""
        return _grams_from_named(named, self.layers_used)


# A SavedModel's signatures name each Gram "gram_<layer>" and take it unbatched.
def _gram_specs(layers):
    return {f"gram_{layer}": tf.TensorSpec([None, None], tf.float32, name=f"gram_{layer}")
            for layer in layers}


def _named_grams(grams, layers):
    return {f"gram_{layer}": grams[layer][0] for layer in layers}


def _grams_from_named(named, layers):
    return {layer: named[f"gram_{layer}"][None] for layer in layers}


class QuiltPipeline(keras.Model):
    """Image quilting from the target (graph_quilting), then `polish_steps` projected
    L-BFGS steps on VGG19's shallow layers (export.polish: what synthesize's quilt does),
    as a Keras model whose only weights are those layers'.

    Its statistics are the exemplar itself — the target with its short edge at target_size
    and its long side centre-cropped to at most twice that (the quilting's DFTs grow with
    the exemplar's sides) — and, with a polish, the exemplar's Grams at the polish layers.
    The blocks are quilting's default for a target_size² exemplar.
    """

    def __init__(self, target_size=256, polish_steps=0, vgg_weights="normalized", **kwargs):
        super().__init__(**kwargs)
        self.target_size = target_size
        self.polish_steps = polish_steps
        self.block, self.overlap = quilting.block_and_overlap(target_size)
        layers = POLISH_LAYERS["quilt"]
        self.layers_used = layers if polish_steps else ()
        if polish_steps:
            from tf_propo import weights

            self.encoder = polish.ShallowEncoder(weights.pretrained_encoder(
                layers, source=vgg_weights, dtype="float32", padding="reflect"), layers)
        self.built = True

    def statistics(self, target, resize=True):
        """{"exemplar": [1, h, w, 3], layer: Gram [1, C, C] per polish layer} of a target
        [1, H, W, 3] in [0, 1]."""
        target = tf.cast(target, tf.float32)
        if resize:
            target = resize_short_edge(target, self.target_size)
            longest = 2 * self.target_size
            shape = tf.shape(target)
            height, width = tf.minimum(shape[1], longest), tf.minimum(shape[2], longest)
            target = tf.slice(target, tf.stack([0, (shape[1] - height) // 2,
                                                (shape[2] - width) // 2, 0]),
                              tf.stack([1, height, width, 3]))
        grams = texture.gram_matrices(self.encoder(target), self.layers_used) \
            if self.polish_steps else {}
        return {"exemplar": target, **grams}

    def synthesize(self, statistics, noise):
        exemplar = statistics["exemplar"][0]
        check = tf.debugging.assert_greater_equal(
            tf.reduce_min(tf.shape(exemplar)[:2]), self.block,
            message=f"exemplar: sides must be >= {self.block} px")
        with tf.control_dependencies([check]):
            noise = tf.cast(noise, tf.float32)
        one = lambda n: quilting.quilt(exemplar, n, self.block, self.overlap)  # noqa: E731
        if noise.shape[0] is not None:  # a static batch (LiteRT): no loop around the loop
            images = tf.stack([one(n) for n in tf.unstack(noise)])
        else:
            images = tf.map_fn(one, noise)
        if not self.polish_steps:
            return images
        grams = {layer: statistics[layer] for layer in self.layers_used}
        return polish.polish(images, self.encoder, grams, self.polish_steps)

    def call(self, inputs, resize=True):
        return self.synthesize(self.statistics(inputs["target"], resize), inputs["noise"])

    def statistics_specs(self):
        return {"exemplar": tf.TensorSpec([None, None, 3], tf.float32, name="exemplar"),
                **_gram_specs(self.layers_used)}

    def named_statistics(self, statistics):
        return {"exemplar": statistics["exemplar"][0],
                **_named_grams(statistics, self.layers_used)}

    def from_named_statistics(self, named):
        return {"exemplar": named["exemplar"][None],
                **_grams_from_named(named, self.layers_used)}


def load_pipeline(model_dir, target_size=256, polish_steps=0):
    """(pipeline, config) of a trained model directory (a TexturePipeline, float32,
    weights restored); model_dir None: (QuiltPipeline with `polish_steps`, {"mode":
    "quilt", "polish_steps": polish_steps})."""
    if model_dir is None:
        return QuiltPipeline(target_size, polish_steps), {"mode": "quilt",
                                                          "polish_steps": polish_steps}
    config = model_dirs.load_config(model_dir)
    if config["mode"] not in model_dirs.PSEUDO_OPTIMIZER_MODES:
        raise UsageError(f"--model_dir={model_dir} holds a {config['mode']} model; only "
                         f"{'/'.join(model_dirs.PSEUDO_OPTIMIZER_MODES)} models export")
    if keras.config.dtype_policy().name != "float32":
        raise RuntimeError("export builds float32 models; the global dtype policy is "
                           f"{keras.config.dtype_policy().name}")
    model = model_dirs.build_model(config)
    model_dirs.restore(model_dir, model)
    return TexturePipeline(model, target_size=target_size), config
