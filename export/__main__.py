"""Export a trained model: python -m tf_propo.export [--model_dir=DIR] --format=saved_model --out=D

  --format=saved_model  a SavedModel directory for TF Serving (signatures: see
                        tf_propo/export/saved_model.py)
  --format=tflite       a .tflite file for LiteRT, static --size / --target_size, with
                        --quantize={none,fp16,int8,dynamic,int8_weights,int8_mixed}
                        (see tf_propo/export/tflite.py)
  --format=compact      a compact model directory (config.json + float16 weights.npz with
                        its sha256), loadable wherever a model_dir is: what the package
                        bundles; any model, the OT decoders included

Before it reports success the export is checked: the written model is loaded and run on a
bundled sample target, and its output compared with the Keras pipeline's ("parity" in the
JSON: relative L2 error of the image, and the texture-loss ratio). The last line of stdout is
one JSON object: format, out, bytes, seconds, parity, ... . Bad input: one line on stderr,
exit code 2, nothing written.
"""

import importlib.resources
import json
import os
import sys
import time

from tf_propo import cli
from tf_propo import files
from tf_propo import memory

from absl import flags

from tf_propo.errors import UsageError

FORMATS = ("saved_model", "tflite", "compact")
# tflite.QUANTIZATIONS, without importing TF (tests/test_export.py checks they agree)
QUANTIZATIONS = ("none", "fp16", "int8", "dynamic", "int8_weights", "int8_mixed")

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Trained po/adapo/propo model directory "
                    "(python -m tf_propo.train). Default: the bundled pretrained ProPO.")
flags.DEFINE_enum("format", "saved_model", FORMATS, "saved_model (TF Serving), tflite "
                  "(LiteRT) or compact (config + float16 weights, any model).")
flags.DEFINE_string("out", None, "Output: a new directory for saved_model, a .tflite file for "
                    "tflite.")
flags.DEFINE_integer("size", 256, "tflite: output texture size in px (static; a multiple of "
                     "16).", lower_bound=16, upper_bound=8192)
flags.DEFINE_integer("target_size", 256, "Target size in px: the short edge the SavedModel "
                     "resizes targets to, and the tflite model's static target input "
                     "(target_size x target_size).", lower_bound=16, upper_bound=8192)
flags.DEFINE_enum("quantize", "none", QUANTIZATIONS, "tflite: none (float32), fp16 (float16 "
                  "weights; with a compact model, e.g. the bundled one, the same output), "
                  "int8 (full-integer, calibrated on --representative; far off), dynamic "
                  "(int8 weights, int8 compute on activations quantized on the fly: fast, "
                  "1.25x the texture loss), int8_weights (int8 weights, float compute: a "
                  "quarter of the file at float quality and speed), int8_mixed (int8 weights, "
                  "int8 compute in VGG, float in the stage networks: a quarter of the file at "
                  "float quality in half the time; the last two need ai-edge-quantizer).")
flags.DEFINE_string("representative", None, "int8: calibration images (a file or folder); "
                    "default: the bundled samples.")
flags.DEFINE_integer("calibration_samples", 16, "int8: number of random target crops used "
                     "for calibration.", lower_bound=1)
flags.DEFINE_bool("verify", True, "Load the written model, run it on a bundled sample and "
                  "report its parity with Keras.")


def _samples_dir():
    return str(importlib.resources.files("tf_propo") / "samples")


def _check_flags():
    """What needs no TensorFlow: checked before its import."""
    if not FLAGS.out:
        raise UsageError("--out is required")
    # Checked before a conversion that can take a minute.
    files.check_creatable(FLAGS.out, f"--out={FLAGS.out}")
    if FLAGS.format in ("saved_model", "compact"):
        if os.path.exists(FLAGS.out):
            raise UsageError(f"--out={FLAGS.out} already exists; a {FLAGS.format} export "
                             "goes into a new directory")
    else:
        if not FLAGS.out.endswith(".tflite"):
            raise UsageError(f"--out={FLAGS.out}: a tflite export is a .tflite file")
        if os.path.isdir(FLAGS.out):
            raise UsageError(f"--out={FLAGS.out} is a directory")
        if FLAGS.size % 16:
            raise UsageError(f"--size={FLAGS.size} must be a multiple of 16")
    # The verification runs the model once on a sample: a texture and a target of these sizes.
    memory.check_fits(FLAGS.size**2 + FLAGS.target_size**2,
                      f"--size={FLAGS.size} --target_size={FLAGS.target_size}",
                      "export smaller sizes")
    if FLAGS.format != "tflite" and FLAGS.quantize != "none":
        raise UsageError("--quantize applies to --format=tflite only")
    if FLAGS.representative and not os.path.exists(FLAGS.representative):
        raise UsageError(f"--representative={FLAGS.representative}: no such file or folder")


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


def _verify_tflite(content, pipeline, target):
    import numpy as np

    from tf_propo.export import parity, run as litert

    interpreter = litert.interpreter(model_content=content)
    target = litert.square_target(target, FLAGS.target_size)[None].astype(np.float32)
    noise = litert.noise(0, FLAGS.size)
    out = litert.run(interpreter, target, noise)[0]
    keras_image = pipeline({"target": target, "noise": noise}, resize=False)[0].numpy()
    return parity.parity(out, keras_image, target[0])


def _write_compact():
    """Rebuild the model of --model_dir, restore it, write config + float16 weights into a
    new directory (temp directory beside it, renamed at the end)."""
    from tf_propo import model_dir as model_dirs
    from tf_propo.files import atomic_directory

    config = model_dirs.load_config(FLAGS.model_dir)
    model = model_dirs.build_model(config)
    model_dirs.restore(FLAGS.model_dir, model)
    weights = atomic_directory(
        FLAGS.out, lambda tmp: model_dirs.write_compact(tmp, model, config))
    size = os.path.getsize(os.path.join(FLAGS.out, os.path.basename(weights)))
    return {"format": "compact", "model_dir": os.path.abspath(FLAGS.model_dir),
            "mode": config["mode"], "out": os.path.abspath(FLAGS.out), "bytes": size}


def main(argv):
    del argv
    _check_flags()
    cli.import_tensorflow_quietly()
    if not FLAGS.model_dir:
        from tf_propo import methods

        FLAGS.model_dir = methods.bundled_propo()
    from tf_propo import files, image_io
    from tf_propo.export import parity, pipeline as pipelines

    start = time.perf_counter()
    if FLAGS.format == "compact":
        result = _write_compact()
        result["seconds"] = round(time.perf_counter() - start, 2)
        print(json.dumps(result))
        return
    pipeline, config = pipelines.load_pipeline(FLAGS.model_dir, FLAGS.target_size)
    result = {"format": FLAGS.format, "model_dir": os.path.abspath(FLAGS.model_dir),
              "mode": config["mode"], "target_size": FLAGS.target_size}
    sample = image_io.read_image(os.path.join(_samples_dir(), "material_metall006.png"))
    if FLAGS.format == "saved_model":
        from tf_propo.export import saved_model

        saved_model.write_saved_model(pipeline, FLAGS.out)
        size = sum(os.path.getsize(os.path.join(root, f))
                   for root, _, names in os.walk(FLAGS.out) for f in names)
        if FLAGS.verify:
            result["parity"] = _verify_saved_model(FLAGS.out, pipeline, sample)
    else:
        from tf_propo.export import tflite

        representative = None
        if FLAGS.quantize == "int8":
            crops = tflite.calibration_targets(FLAGS.representative or _samples_dir(),
                                               FLAGS.calibration_samples, FLAGS.target_size)
            representative = tflite.representative_dataset(crops, FLAGS.size,
                                                           FLAGS.target_size)
        content = tflite.convert(pipeline, FLAGS.size, FLAGS.target_size, FLAGS.quantize,
                                 representative)
        if FLAGS.verify:
            result["parity"] = _verify_tflite(content, pipeline, sample)
            warning = parity.warning(result["parity"], FLAGS.quantize)
            if warning:
                print(warning, file=sys.stderr)
        files.atomic_write(FLAGS.out, lambda f: f.write(content), suffix=".tflite")
        size = len(content)
        result.update({"size": FLAGS.size, "quantize": FLAGS.quantize})
    result.update({"out": os.path.abspath(FLAGS.out), "bytes": size,
                   "seconds": round(time.perf_counter() - start, 2)})
    print(json.dumps(result))


if __name__ == "__main__":
    cli.run(main, tensorflow=False)  # imported once the flags are checked
