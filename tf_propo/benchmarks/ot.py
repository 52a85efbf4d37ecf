"""Optimal-transport synthesis: seconds per strategy and size, the share spent in encode /
match / decode, and texture_loss / noise_texture_loss, in one run.

    python -m tf_propo.benchmarks.ot --decoders=DIR --sizes=128,256,512 \
        --strategies=cholesky,eigh,pca,cdf,sliced [--targets=a.png,b.png]

Seconds: the compiled pipeline (a tf.function, as the command runs it), median of --repeats
after a warm-up. Shares: one eager run with each phase timed to completion. Prints a
Markdown table; the last stdout line is the JSON of all rows.
"""

import statistics
import time

from tf_propo import benchmarks, cli
from tf_propo.ot import DEFAULT_PASSES, STRATEGIES

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("decoders", None, "Trained decoders directory (default: the bundled ones).")
flags.DEFINE_list("targets", None, "Target images (default: the bundled samples).")
flags.DEFINE_list("sizes", ["128", "256", "512"], "Output sizes in px (multiples of 16).")
flags.DEFINE_list("strategies", list(STRATEGIES), "Strategies.")
flags.DEFINE_integer("passes", DEFAULT_PASSES, "sliced/cdf: rotations per layer.",
                     lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Timed runs (median).", lower_bound=1)
flags.DEFINE_integer("seed", 1, "Noise and rotation seed.")


def main(argv):
    del argv
    import importlib.resources
    import os

    import tensorflow as tf

    from tf_propo import image_io, metrics
    from tf_propo.ot import synthesis
    from tf_propo.progress import Progress

    ot = synthesis.load(FLAGS.decoders or synthesis.bundled_decoders(), FLAGS.passes)
    targets = FLAGS.targets or sorted(
        str(p) for p in (importlib.resources.files("tf_propo") / "samples").iterdir()
        if p.name.endswith(".png"))
    sizes = [int(s) for s in FLAGS.sizes]
    progress = Progress(len(targets) * len(sizes) * len(FLAGS.strategies), "ot benchmark")
    rows = []
    for path in targets:
        target = image_io.resize_short_edge(image_io.read_image(path), 256)
        evaluation = metrics.TextureMetrics(target)
        features = ot.target_features(target)
        for size in sizes:
            noise = metrics.reference_noise(FLAGS.seed, size)
            noise_loss = float(evaluation.texture_loss(noise)[0])
            for strategy in FLAGS.strategies:
                run = tf.function(lambda n, s, strategy=strategy: ot.synthesize(
                    features, n, strategy, s))
                seed = tf.constant(FLAGS.seed, tf.int64)
                image = run(noise, seed).numpy()
                times = []
                for _ in range(FLAGS.repeats):
                    start = time.perf_counter()
                    run(noise, seed).numpy()
                    times.append(time.perf_counter() - start)
                phases = {}
                ot.synthesize(features, noise, strategy, seed, timings=phases)
                total = sum(phases.values())
                rows.append({"target": os.path.basename(path), "size": size,
                             "strategy": strategy, "seconds": statistics.median(times),
                             **{f"{k}_share": v / total for k, v in phases.items()},
                             "loss_ratio": float(evaluation.texture_loss(image)[0])
                             / noise_loss})
                progress.update()
    print()
    benchmarks.print_report(
        ["target", "size", "strategy", "seconds", "encode", "match", "decode", "loss / noise"],
        [[r["target"], r["size"], r["strategy"], f"{r['seconds']:.2f}",
          f"{r['encode_share']:.0%}", f"{r['match_share']:.0%}", f"{r['decode_share']:.0%}",
          f"{r['loss_ratio']:.3g}"] for r in rows], rows)


if __name__ == "__main__":
    cli.run(main)
