"""SavedModel for TF Serving, written with Keras' ExportArchive (it tracks the Keras 3
variables itself; a hand-made tf.Module saved with tf.saved_model.save lost them).

Signatures (all tensors unbatched; one texture per request):

  serving_default(image uint8 [H, W, 3], seed int64 [], size int32 [] or [2])
      -> texture uint8 [height, width, 3]
      the whole pipeline: the target's short edge resized to the model's target size, VGG19,
      Gram statistics, every stage from the seed's noise. H, W in [16, MAX_TARGET_SIDE]; size
      one side (a square) or [height, width], each a multiple of 16 in [16, MAX_SIZE].
  statistics(image uint8 [H, W, 3]) -> the target's statistics, for a server that caches
      targets: exemplar float32 [h, w, 3] (quilting: the resized target itself), or
      gram_<layer> float32 [C, C] per layer (a pseudo optimizer);
  from_statistics(those, seed int64 [], size int32 [] or [2])
      -> texture uint8 [height, width, 3].
"""

import keras
import tensorflow as tf

from tf_propo import po
from tf_propo.export import pipeline as pipelines
from tf_propo.files import atomic_directory

SIGNATURES = ("serving_default", "statistics", "from_statistics")


def _image(image):
    """uint8 [H, W, 3] -> float [1, H, W, 3] in [0, 1], with the documented limits checked."""
    shape = tf.shape(image)
    checks = [
        tf.debugging.assert_greater_equal(tf.reduce_min(shape[:2]), 16,
                                          message="image: sides must be >= 16 px"),
        tf.debugging.assert_less_equal(tf.reduce_max(shape[:2]), pipelines.MAX_TARGET_SIDE,
                                       message="image: sides must be <= "
                                               f"{pipelines.MAX_TARGET_SIDE} px"),
    ]
    with tf.control_dependencies(checks):
        return tf.cast(image, tf.float32)[None] / 255.0


def _noise(seed, size):
    """The start noise for `size`: a scalar side or [height, width]."""
    sides = tf.reshape(size, [-1])
    checks = [
        tf.debugging.assert_less_equal(tf.size(sides), 2,
                                       message="size must be one side or [height, width]"),
        tf.debugging.assert_equal(sides % 16, 0, message="size must be a multiple of 16"),
        tf.debugging.assert_greater_equal(sides, 16, message="size must be >= 16"),
        tf.debugging.assert_less_equal(sides, pipelines.MAX_SIZE,
                                       message=f"size must be <= {pipelines.MAX_SIZE}"),
    ]
    with tf.control_dependencies(checks):
        return po.start_noise(seed, (sides[0], sides[-1]))


def _uint8(image):
    return {"texture": tf.cast(tf.round(tf.clip_by_value(image[0], 0.0, 1.0) * 255.0),
                               tf.uint8)}


def build_archive(pipeline):
    """A keras.export.ExportArchive with the three signatures."""
    image_spec = tf.TensorSpec([None, None, 3], tf.uint8, name="image")
    seed_spec = tf.TensorSpec([], tf.int64, name="seed")
    size_spec = tf.TensorSpec(None, tf.int32, name="size")  # a side, or [height, width]

    @tf.function(input_signature=[image_spec, seed_spec, size_spec])
    def serve(image, seed, size):
        grams = pipeline.statistics(_image(image))
        return _uint8(pipeline.synthesize(grams, _noise(seed, size)))

    @tf.function(input_signature=[image_spec])
    def statistics(image):
        return pipeline.named_statistics(pipeline.statistics(_image(image)))

    @tf.function(input_signature=[pipeline.statistics_specs(), seed_spec, size_spec])
    def from_statistics(named, seed, size):
        return _uint8(pipeline.synthesize(pipeline.from_named_statistics(named),
                                          _noise(seed, size)))

    archive = keras.export.ExportArchive()
    archive.track(pipeline)
    archive.add_endpoint("serving_default", serve)
    archive.add_endpoint("statistics", statistics)
    archive.add_endpoint("from_statistics", from_statistics)
    return archive


def write_saved_model(pipeline, path):
    """Write the SavedModel to directory `path` atomically: a failure leaves nothing there."""
    atomic_directory(path, lambda tmp: build_archive(pipeline).write_out(tmp, verbose=False))
