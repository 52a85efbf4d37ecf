"""What the export benchmarks share: the Keras pipeline as one tf.function, and each TFLite
variant of it under LiteRT, both on a square target of the output's size."""

import importlib.resources


def keras_synthesis(pipeline):
    """(target [1, S, S, 3], noise [1, S, S, 3]) -> texture, the Keras pipeline as a
    tf.function (the target is not resized: the .tflite files take it as it is)."""
    import tensorflow as tf

    return tf.function(lambda target, noise: pipeline({"target": target, "noise": noise},
                                                      resize=False))


def variants(pipeline, size, quantizations, threads):
    """(quantize, LiteRT interpreter, file bytes) for each TFLite variant of `pipeline` with
    size² output and target, converted one at a time from one SavedModel; int8 is calibrated
    on the bundled samples (3 noises each)."""
    from tf_propo import data, image_io
    from tf_propo.export import run as runner
    from tf_propo.export import tflite

    samples = str(importlib.resources.files("tf_propo") / "samples")
    calibration = [runner.square_target(image_io.read_image(p), size)
                   for p in data.list_images(samples)]
    representative = tflite.representative_dataset(calibration * 3, size, size)
    for quantize, content in tflite.convert_variants(pipeline, size, size, quantizations,
                                                     representative):
        yield quantize, runner.interpreter(model_content=content, threads=threads), len(content)
