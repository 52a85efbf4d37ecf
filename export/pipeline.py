"""The whole synthesis as one exportable Keras model: target image -> statistics -> texture.

    statistics(target)         target [1, H, W, 3] in [0, 1] -> {layer: Gram [1, C, C]}
    synthesize(grams, noise)   noise = the pre-sigmoid start x[0], [B, S, S, 3] in [−1, 1]
                               -> the last stage's texture [B, S, S, 3] in [0, 1]
    call({"target", "noise"})  both, in one graph

The graph holds the VGG encoder, the Gram statistics, the closed-form feature gradients and
every stage network: no gradient ops (only grad_mode="local" models export). The same noise as
`python -m tf_propo.synthesize --seed=S` (one sample) comes from `po.start_noise`, so an
exported model reproduces the command's texture.
"""

import keras
import tensorflow as tf

from tf_propo import model_dir as model_dirs
from tf_propo import po
from tf_propo import texture
from tf_propo.errors import UsageError

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


def load_pipeline(model_dir, target_size=256):
    """TexturePipeline of a trained model directory (float32, weights restored)."""
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
