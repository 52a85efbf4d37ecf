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
of the file at float quality and speed), int8_mixed (the same int8 weights; VGG's
convolutions compute in int8 on activations quantized on the fly, the stage networks in
float: a quarter of the file at float quality and half of float's time — the stage networks'
activations are what int8 arithmetic ruins, VGG's are not). The last two apply
ai-edge-quantizer recipes to the float32 .tflite (the TFLite converter has no weight-only
or per-layer mode).

Conversion goes Keras ExportArchive -> SavedModel -> TFLiteConverter.from_saved_model, Keras'
own LiteRT path (keras.src.export.litert); every variant has a parity test against Keras.
"""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

QUANTIZATIONS = ("none", "fp16", "int8", "dynamic", "int8_weights", "int8_mixed")


# Variants made by ai-edge-quantizer from the float32 file.
AI_EDGE_QUANTIZER = ("int8_weights", "int8_mixed")


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


def calibration_targets(spec, count, size, seed=0):
    """`count` random size x size crops of the images at `spec` (short edge resized to
    size·1.25 first, so crops differ)."""
    from tf_propo import data, image_io
    from tf_propo.errors import UsageError

    paths = data.list_images(spec) if os.path.isdir(spec) else [spec]
    if not paths:
        raise UsageError(f"--representative={spec}: no images there")
    rng = np.random.default_rng(seed)
    images = [image_io.resize_short_edge(image_io.read_image(p), round(size * 1.25))
              for p in paths]
    crops = []
    for i in range(count):
        image = images[i % len(images)]
        top = rng.integers(0, image.shape[0] - size + 1)
        left = rng.integers(0, image.shape[1] - size + 1)
        crops.append(image[top:top + size, left:left + size])
    return crops


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
    return dict(convert_variants(pipeline, size, target_size, [quantize], representative))[
        quantize]


def convert_variants(pipeline, size, target_size, quantizations, representative=None):
    """(quantize, .tflite bytes) for each of `quantizations`, in order, from one SavedModel:
    writing it costs as much as a conversion, and the ai-edge-quantizer variants are
    rewrites of the float32 file, so several variants cost little more than one each."""
    unknown = [q for q in quantizations if q not in QUANTIZATIONS]
    if unknown:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {unknown[0]!r}")
    if "int8" in quantizations and representative is None:
        raise ValueError("int8 quantization needs a representative dataset")
    with tempfile.TemporaryDirectory() as saved:
        _archive(pipeline, size, target_size).write_out(saved, verbose=False)
        float_content = None
        for quantize in quantizations:
            if quantize in ("none",) + AI_EDGE_QUANTIZER:
                if float_content is None:
                    float_content = _convert_saved_model(saved, "none", None)
                content = float_content
                if quantize in AI_EDGE_QUANTIZER:
                    content = int8_weights(float_content, integer_vgg=quantize == "int8_mixed")
            else:
                content = _convert_saved_model(saved, quantize, representative)
            yield quantize, content


def _convert_saved_model(saved, quantize, representative):
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                               tf.lite.OpsSet.TFLITE_BUILTINS]
    from tf_propo import native_stderr

    with native_stderr.captured():  # the converter's MLIR and TensorFlow log lines
        return converter.convert()


def int8_weights(content, integer_vgg=False):
    """A float32 .tflite's bytes with int8 per-channel weights, by ai-edge-quantizer (the
    `litert` extra): dequantized before each op, which computes in float; with integer_vgg,
    VGG's convolutions instead compute in int8 on activations the runtime quantizes on the
    fly (dynamic range)."""
    from tf_propo.errors import UsageError
    from tf_propo.vgg import CONV_NAMES

    try:
        from ai_edge_quantizer import quantizer, recipe_manager
        from ai_edge_quantizer.recipe import TFLOperationName
    except ImportError:
        raise UsageError("--quantize=int8_weights/int8_mixed needs ai-edge-quantizer: pip "
                         "install 'tf-propo[litert]'") from None
    recipe = recipe_manager.RecipeManager()
    recipe.add_weight_only_config(regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED,
                                  num_bits=8)
    if integer_vgg:
        # Later rules win. VGG's layers are named conv{b}_{i} (vgg.py); a stage network's
        # are prefixed (".../relu1_1_res0_conv1"), so "/conv" + name matches VGG's alone.
        convs = "|".join(n for n in CONV_NAMES if n.startswith("conv"))
        recipe.add_dynamic_config(regex=f"/({convs})_", num_bits=8,
                                  operation_name=TFLOperationName.CONV_2D)
    from tf_propo import native_stderr

    with native_stderr.captured():
        result = quantizer.Quantizer(content, recipe.get_quantization_recipe()).quantize(
            enable_progress_report=False, enable_progress_bar=False)
    return bytes(result.quantized_model)
