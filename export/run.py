"""Run an exported .tflite model with LiteRT: python -m tf_propo.export.run --model=m.tflite
--target=IMG --out=o.png

What an app does, in a few lines (no TensorFlow needed: ai-edge-litert, NumPy, OpenCV):
  1. the target's short edge resized to the model's T, centre-cropped to T x T, RGB in [0, 1];
  2. noise U(−1, 1) of the output's shape [1, S, S, 3] (a new noise, a new texture);
  3. the `serving_default` signature: texture = runner(target=..., noise=...)["texture"],
     RGB in [0, 1].
The last line of stdout is one JSON object (seconds of the inference alone, size, out, ...).
"""

import json
import os
import time

from absl import flags

from tf_propo import cli

THREADS = 2

FLAGS = flags.FLAGS
if __name__ == "__main__":
    flags.DEFINE_string("model", None, "The .tflite file (python -m tf_propo.export "
                        "--format=tflite).")
    flags.DEFINE_string("target", None, "Target texture image; default: the bundled sample.")
    flags.DEFINE_string("out", "texture.png", "Output image, written atomically.")
    flags.DEFINE_integer("seed", 0, "Noise seed: the same seed gives the same texture.",
                         lower_bound=0, upper_bound=cli.MAX_SEED)
    flags.DEFINE_integer("threads", THREADS, "CPU threads of the XNNPACK delegate.",
                         lower_bound=1)


def interpreter(model_path=None, model_content=None, threads=THREADS):
    """A LiteRT interpreter (XNNPACK, `threads` threads) with its tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter

    from tf_propo import native_stderr

    with native_stderr.captured():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
        result = Interpreter(model_path=model_path, model_content=model_content,
                             num_threads=threads)
        result.allocate_tensors()
    return result


def input_shapes(interp):
    """{"target": [1, T, T, 3], "noise": [1, S, S, 3]} of a tf_propo .tflite model."""
    details = interp.get_signature_runner().get_input_details()
    return {name: list(d["shape"]) for name, d in details.items()}


def noise(seed, size):
    """x[0]'s noise for the app: U(−1, 1), [1, size, size, 3], float32."""
    import numpy as np

    return np.random.default_rng(seed).uniform(-1.0, 1.0, (1, size, size, 3)) \
        .astype(np.float32)


def square_target(image, size):
    """Short edge resized to `size`, centre-cropped to size x size: the model's target."""
    from tf_propo import image_io

    image = image_io.resize_short_edge(image, size)
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[top:top + size, left:left + size]


def run(interp, target, noise_):
    """target [1, T, T, 3] and noise [1, S, S, 3] -> texture [1, S, S, 3] in [0, 1]."""
    return interp.get_signature_runner()(target=target, noise=noise_)["texture"]


def main(argv):
    del argv
    import importlib.resources

    import numpy as np

    from tf_propo import image_io
    from tf_propo.errors import UsageError

    if not FLAGS.model:
        raise UsageError("--model is required (a .tflite file)")
    if not os.path.isfile(FLAGS.model):
        raise UsageError(f"--model={FLAGS.model}: no such file")
    image_io.check_output_path(FLAGS.out)
    target_path = FLAGS.target or str(importlib.resources.files("tf_propo") / "samples"
                                      / "material_metall006.png")
    target = image_io.read_image(target_path)
    try:
        interp = interpreter(FLAGS.model, threads=FLAGS.threads)
        shapes = input_shapes(interp)
    except (ValueError, RuntimeError, KeyError) as e:
        raise UsageError(f"--model={FLAGS.model}: not a tf_propo LiteRT model "
                         f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
            from None
    if set(shapes) != {"target", "noise"}:
        raise UsageError(f"--model={FLAGS.model}: not a tf_propo LiteRT model (inputs "
                         f"{sorted(shapes)}, expected noise and target)")
    target_size, size = int(shapes["target"][1]), int(shapes["noise"][1])
    square = square_target(target, target_size)
    start_noise = noise(FLAGS.seed, size)
    batch = square[None].astype(np.float32)
    run(interp, batch, start_noise)  # first run: XNNPACK packs the weights
    start = time.perf_counter()
    texture = run(interp, batch, start_noise)[0]
    seconds = time.perf_counter() - start
    image_io.write_image(FLAGS.out, texture)
    print(json.dumps({"model": os.path.abspath(FLAGS.model), "seconds": round(seconds, 4),
                      "size": size, "target_size": target_size, "seed": FLAGS.seed,
                      "threads": FLAGS.threads, "target": os.path.abspath(target_path),
                      "out": os.path.abspath(FLAGS.out)}))


if __name__ == "__main__":
    cli.run(main, tensorflow=False)
