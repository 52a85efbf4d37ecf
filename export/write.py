"""Export image quilting or a trained pseudo optimizer, checked: what
`python -m tf_propo.export` and `TextureSynthesizer.export` both run.

    export_model(model_dir, out, format, ...)  -> the result the command prints as JSON

Before it returns, the written model is loaded and run on a bundled sample target and its
output compared with the Keras pipeline's ("parity": relative L2 error of the image and the
texture-loss ratio). Nothing is left at `out` when it fails.
"""

import importlib.resources
import os
import time

FORMATS = ("saved_model", "tflite", "compact")
# tflite.QUANTIZATIONS, without importing TF (tests/test_export.py checks they agree)
QUANTIZATIONS = ("none", "fp16", "int8", "dynamic", "int8_weights", "int8_mixed")
# The sample the parity check runs on (bundled with the package).
CHECK_SAMPLE = "material_metall006.png"


def samples_dir():
    """The package's bundled sample targets (the default calibration images too)."""
    return str(importlib.resources.files("tf_propo") / "samples")


def check_arguments(out, format="saved_model", size=256, quantize="none", quilting=False,
                    polish_steps=None):
    """ValueError naming the argument for what needs no TensorFlow: checked before a
    conversion that can take a minute. quilting: what is exported is image quilting (no
    model_dir)."""
    if polish_steps is not None and not quilting:
        raise ValueError(f"polish_steps={polish_steps}: the polish belongs to quilting; a "
                         "model_dir's pseudo optimizer has none")
    if polish_steps is not None and polish_steps < 0:
        raise ValueError(f"polish_steps must be >= 0, got {polish_steps}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if quilting and format == "compact":
        raise ValueError("format=compact writes a trained model's weights and needs a "
                         "model_dir; image quilting has none")
    if quilting and quantize != "none":
        raise ValueError(f"quantize={quantize}: image quilting has no weights to quantize "
                         "(quantize applies to a model_dir's pseudo optimizer)")
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZATIONS)}, got "
                         f"{quantize!r}")
    if format != "tflite" and quantize != "none":
        raise ValueError(f"quantize={quantize} applies to the tflite format only")
    if not out:
        raise ValueError("out is required")
    if format in ("saved_model", "compact"):
        if os.path.exists(out):
            raise ValueError(f"out={out} already exists; a {format} export goes into a new "
                             "directory")
    else:
        if not str(out).endswith(".tflite"):
            raise ValueError(f"out={out}: a tflite export is a .tflite file")
        if os.path.isdir(out):
            raise ValueError(f"out={out} is a directory")
        if size % 16:
            raise ValueError(f"size={size} must be a multiple of 16")


def export_model(model_dir, out, format="saved_model", size=256, target_size=256,
                 quantize="none", representative=None, calibration_samples=16, verify=True,
                 polish_steps=None):
    """Write image quilting (model_dir None) or a trained po / adapo / propo model
    directory as a SavedModel directory or a .tflite file (static `size`² output and
    `target_size`² target, a model directory's `quantize`d), or a model directory as a
    compact one (config + float16 weights; any model, the OT decoders too).

    The exported quilting is synthesize's quilt in one graph: graph_quilting's quilt and
    colour match, then export.polish's `polish_steps` L-BFGS steps on VGG19's shallow layers
    (None: synthesize's default, methods.default_polish_steps("quilt"); 0: none, no VGG weights).

    Args:
        representative: int8: calibration images (a file or folder; default the bundled
            samples), `calibration_samples` random crops of them.
        verify: load what was written and report its parity with Keras (not for compact).

    Returns:
        dict: format, model_dir, mode, out, bytes, seconds, and parity where verified.
    """
    check_arguments(out, format, size, quantize, model_dir is None, polish_steps)
    start = time.perf_counter()
    if format == "compact":
        result = _write_compact(model_dir, out)
    else:
        from tf_propo import image_io
        from tf_propo.export import pipeline as pipelines

        if model_dir is None and polish_steps is None:
            from tf_propo import methods

            polish_steps = methods.default_polish_steps("quilt")
        pipeline, config = pipelines.load_pipeline(model_dir, target_size, polish_steps or 0)
        result = {"format": format, "mode": config["mode"], "target_size": target_size,
                  "model_dir": model_dir and os.path.abspath(model_dir)}
        if model_dir is None:
            result["polish_steps"] = polish_steps
        sample = image_io.read_image(os.path.join(samples_dir(), CHECK_SAMPLE))
        if format == "saved_model":
            result.update(_write_saved_model(pipeline, out, sample if verify else None))
        else:
            result.update(_write_tflite(pipeline, out, size, target_size, quantize,
                                        representative, calibration_samples,
                                        sample if verify else None))
        result["out"] = os.path.abspath(out)
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def _write_saved_model(pipeline, out, sample):
    from tf_propo.export import saved_model

    saved_model.write_saved_model(pipeline, out)
    size = sum(os.path.getsize(os.path.join(root, f))
               for root, _, names in os.walk(out) for f in names)
    result = {"bytes": size}
    if sample is not None:
        result["parity"] = _verify_saved_model(out, pipeline, sample)
    return result


def _write_tflite(pipeline, out, size, target_size, quantize, representative,
                  calibration_samples, sample):
    from tf_propo import files
    from tf_propo.export import tflite

    dataset = None
    if quantize == "int8":
        crops = tflite.calibration_targets(representative or samples_dir(),
                                           calibration_samples, target_size)
        dataset = tflite.representative_dataset(crops, size, target_size)
    content = tflite.convert(pipeline, size, target_size, quantize, dataset)
    result = {"size": size, "quantize": quantize, "bytes": len(content)}
    if sample is not None:
        result["parity"] = _verify_tflite(content, pipeline, sample, size, target_size)
    files.atomic_write(out, lambda f: f.write(content), suffix=".tflite")
    return result


def _verify_saved_model(path, pipeline, target):
    """Serving signature vs the Keras pipeline on the same target and seed."""
    import numpy as np
    import tensorflow as tf

    from tf_propo import po
    from tf_propo.export import parity

    size = 64
    loaded = tf.saved_model.load(path)
    image = np.round(target * 255).astype(np.uint8)
    served = loaded.signatures["serving_default"](
        image=tf.constant(image), seed=tf.constant(0, tf.int64), size=tf.constant(size))
    served = served["texture"].numpy().astype(np.float32) / 255.0
    keras_image = pipeline({"target": tf.constant(image, tf.float32)[None] / 255.0,
                            "noise": po.start_noise(0, size)})[0].numpy()
    return parity.parity(served, keras_image, target)


def _verify_tflite(content, pipeline, target, size, target_size):
    import numpy as np

    from tf_propo.export import parity, run as litert

    interpreter = litert.interpreter(model_content=content)
    target = litert.square_target(target, target_size)[None].astype(np.float32)
    noise = litert.noise(0, size)
    out = litert.run(interpreter, target, noise)[0]
    keras_image = pipeline({"target": target, "noise": noise}, resize=False)[0].numpy()
    return parity.parity(out, keras_image, target[0])


def _write_compact(model_dir, out):
    """Rebuild the model of `model_dir`, restore it, write config + float16 weights into a
    new directory (temp directory beside it, renamed at the end)."""
    from tf_propo import model_dir as model_dirs
    from tf_propo.files import atomic_directory

    config = model_dirs.load_config(model_dir)
    model = model_dirs.build_model(config)
    model_dirs.restore(model_dir, model)
    weights = atomic_directory(out, lambda tmp: model_dirs.write_compact(tmp, model, config))
    size = os.path.getsize(os.path.join(out, os.path.basename(weights)))
    return {"format": "compact", "model_dir": os.path.abspath(model_dir),
            "mode": config["mode"], "out": os.path.abspath(out), "bytes": size}
