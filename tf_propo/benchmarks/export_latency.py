"""LiteRT latency of the exported model beside Keras on this CPU, per size and quantization, in
one run.

    python -m tf_propo.benchmarks.export_latency --sizes=128,256   # quilting, polish included
    python -m tf_propo.benchmarks.export_latency --method=propo --model_dir=DIR \
        --sizes=128,256,512 --quantizations=none,fp16,int8,dynamic,int8_weights,int8_mixed

For each size S (output S x S, target S x S too, as an app would pass a thumbnail) the Keras
pipeline (float32, a tf.function) and each .tflite variant (LiteRT, XNNPACK, --threads) run
the same target and noise; median seconds over --repeats runs after one warm-up. The texture
loss of each variant's output over Keras' output is reported as well (quality cost of the
quantization). Prints a Markdown table; the last stdout line is the JSON of all rows.
"""

import statistics
import time

from tf_propo import benchmarks, cli

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("method", "quilt", ["quilt", "propo"], "What is exported, as the export "
                  "command's --method: quilting (the default) or a pseudo optimizer.")
flags.DEFINE_integer("polish_steps", None, "quilt: the polish steps in the graph (default: "
                     "the export's, 4).", lower_bound=0)
flags.DEFINE_string("model_dir", None, "propo: a trained po/adapo/propo model directory "
                    "(default: the bundled pretrained ProPO).")
flags.DEFINE_list("sizes", ["128", "256", "512"], "Output sizes in px (multiples of 16).")
flags.DEFINE_list("quantizations", None, "TFLite variants (default: every one for a pseudo "
                  "optimizer, none for quilting, which has no weights to quantize).")
flags.DEFINE_integer("threads", 2, "LiteRT (XNNPACK) threads.", lower_bound=1)
flags.DEFINE_integer("repeats", 5, "Timed runs per measurement (median).", lower_bound=1)
flags.DEFINE_string("target", None, "Target image (default: the bundled metall006 sample).")


def _median_seconds(fn, repeats):
    fn()  # warm-up: tracing, weight packing
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv):
    del argv
    import importlib.resources

    import numpy as np

    from tf_propo import image_io, metrics
    from tf_propo.benchmarks import litert
    from tf_propo.export import pipeline as pipelines
    from tf_propo.export import run as runner
    from tf_propo.export import tflite
    from tf_propo.progress import Progress

    from tf_propo import methods
    from tf_propo.errors import UsageError

    quilt = FLAGS.method == "quilt"
    if quilt and FLAGS.model_dir:
        raise UsageError("--method=quilt takes no --model_dir")
    quantizations = FLAGS.quantizations or (["none"] if quilt else list(tflite.QUANTIZATIONS))
    tflite.check_quantizations(quantizations, "--quantizations")
    if quilt and quantizations != ["none"]:
        raise UsageError("--quantizations: quilting has no weights to quantize; only none")
    polish_steps = (methods.default_polish_steps("quilt") if FLAGS.polish_steps is None
                    else FLAGS.polish_steps)
    if not quilt and not FLAGS.model_dir:
        FLAGS.model_dir = methods.bundled_propo()
    samples = importlib.resources.files("tf_propo") / "samples"
    target_image = image_io.read_image(FLAGS.target or str(samples / "material_metall006.png"))
    sizes = [int(s) for s in FLAGS.sizes]
    if not quilt:
        pipeline, config = pipelines.load_pipeline(FLAGS.model_dir)
    progress = Progress(len(sizes) * (1 + len(quantizations)), "export latency")
    rows = []
    for size in sizes:
        if quilt:  # its blocks follow the target's size
            pipeline, config = pipelines.load_pipeline(None, size, polish_steps)
        target = runner.square_target(target_image, size)[None].astype(np.float32)
        noise = runner.noise(0, size)
        keras_fn = litert.keras_synthesis(pipeline)
        reference = keras_fn(target, noise).numpy()
        keras_seconds = _median_seconds(lambda: keras_fn(target, noise).numpy(), FLAGS.repeats)
        evaluation = metrics.TextureMetrics(target[0])
        reference_loss = float(evaluation.texture_loss(reference)[0])
        rows.append({"size": size, "runtime": "keras", "quantize": "none",
                     "seconds": keras_seconds, "ratio_to_keras": 1.0, "bytes": None,
                     "loss_ratio_to_keras": 1.0})
        progress.update()
        for quantize, interp, file_bytes in litert.variants(pipeline, size, quantizations,
                                                            FLAGS.threads):
            out = runner.run(interp, target, noise)
            seconds = _median_seconds(lambda: runner.run(interp, target, noise), FLAGS.repeats)
            rows.append({"size": size, "runtime": "litert", "quantize": quantize,
                         "seconds": seconds, "ratio_to_keras": seconds / keras_seconds,
                         "bytes": file_bytes,
                         "loss_ratio_to_keras": float(evaluation.texture_loss(out)[0])
                         / reference_loss})
            progress.update()
    model = (f"quilting, {polish_steps} polish steps" if quilt else
             f"{FLAGS.model_dir} ({config['mode']}, {config['stages']} stages, width "
             f"{config['width']})")
    print(f"\nmodel: {model}; LiteRT threads: {FLAGS.threads}\n")
    benchmarks.print_report(
        ["size", "runtime", "quantize", "ms", "× Keras", "MB", "loss / Keras'"],
        [[r["size"], r["runtime"], r["quantize"], f"{r['seconds'] * 1e3:.0f}",
          f"{r['ratio_to_keras']:.2f}", f"{r['bytes'] / 1e6:.1f}" if r["bytes"] else "-",
          f"{r['loss_ratio_to_keras']:.3f}"] for r in rows], rows)


if __name__ == "__main__":
    cli.run(main)
