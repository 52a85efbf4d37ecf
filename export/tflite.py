"""TFLite / LiteRT conversion: one static-shape graph per export.

The .tflite model (what an app developer wires up):
  inputs   target  float32 [1, T, T, 3], RGB in [0, 1] (T = the export's --target_size: the
                   app resizes the target's short edge to T and centre-crops it)
           noise   float32 [1, S, S, 3], U(−1, 1): the pre-sigmoid start image x[0]
                   (S = --size; a new noise gives a new texture)
  output   texture float32 [1, S, S, 3], RGB in [0, 1]
Only TFLite builtin ops (no Flex delegate needed); XNNPACK runs it.

Quantization: none (float32), fp16 (float16 weights, computed in float32 or fp16 where the
delegate allows), int8 (full-integer weights and activations calibrated on a representative
dataset of real texture crops and noise, float fallback for ops without int8 kernels; inputs
and outputs stay float32), dynamic (int8 weights; the runtime quantizes activations on the
fly and computes in int8: fast, but 1.25x the texture loss), int8_weights (weight-only: int8
per-channel weights, dequantized to float before each op, which computes in float: a quarter
of the file at float quality and speed; ai-edge-quantizer's weight_only_wi8_afp32 recipe
applied to the float32 .tflite, as the TFLite converter has no weight-only mode).

Conversion goes Keras ExportArchive -> SavedModel -> TFLiteConverter.from_saved_model, Keras'
own LiteRT path (keras.src.export.litert); every variant has a parity test against Keras.
"""

import tempfile

import keras
import numpy as np
import tensorflow as tf

QUANTIZATIONS = ("none", "fp16", "int8", "dynamic", "int8_weights")


def check_quantizations(names, flag="--quantize"):
    """A UsageError naming `flag` unless every name is one of QUANTIZATIONS."""
    from tf_propo.errors import UsageError

    unknown = sorted(set(names) - set(QUANTIZATIONS))
    if unknown:
        raise UsageError(f"{flag}: unknown {', '.join(unknown)}; known: "
                         f"{', '.join(QUANTIZATIONS)}")


def _archive(pipeline, size, target_size):
    target_spec = tf.TensorSpec([1, target_size, target_size, 3], tf.float32, name="target")
    noise_spec = tf.TensorSpec([1, size, size, 3], tf.float32, name="noise")

    @tf.function(input_signature=[target_spec, noise_spec])
    def serve(target, noise):
        grams = pipeline.statistics(target, resize=False)
        return {"texture": pipeline.synthesize(grams, noise)}

    archive = keras.export.ExportArchive()
    archive.track(pipeline)
    archive.add_endpoint("serving_default", serve)
    return archive


def representative_dataset(targets, size, target_size, seed=0):
    """A generator of {"target", "noise"} calibration samples from float RGB target arrays
    (already target_size × target_size) and fresh noise."""
    rng = np.random.default_rng(seed)

    def generate():
        for target in targets:
            noise = rng.uniform(-1.0, 1.0, (1, size, size, 3)).astype(np.float32)
            yield {"target": np.asarray(target, np.float32)[None], "noise": noise}

    return generate


def convert(pipeline, size, target_size=256, quantize="none", representative=None):
    """The .tflite bytes of `pipeline` for output size × size and a target_size² target.

    representative: for int8, a zero-argument callable yielding {"target", "noise"} dicts
    (representative_dataset)."""
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    if quantize == "int8" and representative is None:
        raise ValueError("int8 quantization needs a representative dataset")
    with tempfile.TemporaryDirectory() as saved:
        _archive(pipeline, size, target_size).write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize not in ("none", "int8_weights"):
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "int8":
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                                   tf.lite.OpsSet.TFLITE_BUILTINS]
        content = converter.convert()
    return weight_only_int8(content) if quantize == "int8_weights" else content


def weight_only_int8(content):
    """A float32 .tflite's bytes with int8 weights that are dequantized before use (float
    compute), by ai-edge-quantizer (the `litert` extra)."""
    from tf_propo.errors import UsageError

    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError:
        raise UsageError("--quantize=int8_weights needs ai-edge-quantizer: pip install "
                         "'tf-propo[litert]'") from None
    weight_only = quantizer.Quantizer(content, recipe.weight_only_wi8_afp32())
    return bytes(weight_only.quantize(enable_progress_report=False,
                                      enable_progress_bar=False).quantized_model)
