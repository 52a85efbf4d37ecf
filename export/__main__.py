"""Export the fast synthesis: python -m tf_propo.export [--method=quilt|propo] [--model_dir=DIR]
--format=saved_model --out=D

  --method=quilt        (the default) synthesize's quilt as one graph: the quilt, its colour
                        match and --polish_steps L-BFGS steps on VGG19's shallow layers
                        (tf_propo/graph_quilting.py, export/polish.py)
  --method=propo        the bundled pretrained ProPO; --model_dir=DIR: a trained
                        po/adapo/propo model

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

import json
import os
import sys

from tf_propo import cli
from tf_propo import files
from tf_propo import memory

from absl import flags

from tf_propo.errors import UsageError
from tf_propo.export.write import FORMATS, QUANTIZATIONS

FLAGS = flags.FLAGS
flags.DEFINE_enum("method", "quilt", ["quilt", "propo"], "quilt (the default): "
                  "synthesize's quilt, polish included; propo: the bundled pretrained ProPO, "
                  "or with --model_dir the model there.")
flags.DEFINE_integer("polish_steps", None, "quilt: L-BFGS steps on VGG19's shallow layers "
                     "inside the exported graph (0: none, no VGG weights in it). Default: "
                     "synthesize's, 4.", lower_bound=0)
flags.DEFINE_string("model_dir", None, "Trained po/adapo/propo model directory "
                    "(python -m tf_propo.train) to export instead of quilting.")
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


def _check_flags():
    """What needs no TensorFlow: checked before its import."""
    from tf_propo.export import write

    if not FLAGS.out:
        raise UsageError("--out is required")
    if FLAGS.model_dir and FLAGS["method"].present and FLAGS.method == "quilt":
        raise UsageError("--method=quilt takes no --model_dir (a trained model exports "
                         "without --method)")
    files.check_creatable(FLAGS.out, f"--out={FLAGS.out}")
    try:
        write.check_arguments(FLAGS.out, FLAGS.format, FLAGS.size, FLAGS.quantize,
                              not FLAGS.model_dir and FLAGS.method == "quilt",
                              FLAGS.polish_steps)
    except ValueError as e:  # the library names its arguments; the flags have -- before
        raise UsageError(f"--{e}") from None
    # The verification runs the model once on a sample: a texture and a target of these sizes.
    memory.check_fits(FLAGS.size**2 + FLAGS.target_size**2,
                      f"--size={FLAGS.size} --target_size={FLAGS.target_size}",
                      "export smaller sizes")
    if FLAGS.representative and not os.path.exists(FLAGS.representative):
        raise UsageError(f"--representative={FLAGS.representative}: no such file or folder")


def main(argv):
    del argv
    _check_flags()
    cli.import_tensorflow_quietly()
    from tf_propo.export import parity, write

    if not FLAGS.model_dir and FLAGS.method == "propo":
        from tf_propo import methods

        FLAGS.model_dir = methods.bundled_propo()
    result = write.export_model(
        FLAGS.model_dir, FLAGS.out, FLAGS.format, FLAGS.size, FLAGS.target_size,
        FLAGS.quantize, FLAGS.representative, FLAGS.calibration_samples, FLAGS.verify,
        FLAGS.polish_steps)
    warning = parity.warning(result.get("parity", {}), FLAGS.quantize)
    if warning:
        print(warning, file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    cli.run(main, tensorflow=False)  # imported once the flags are checked
