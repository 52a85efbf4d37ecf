"""Gatys' synthesis: seconds and texture_loss / noise_texture_loss at several iteration counts,
per output size and precision, in one run.

    python -m tf_propo.benchmarks.gatys --sizes=128,256 --checkpoints=100,300,1000 \
        --precisions=float32,mixed_bfloat16 [--targets=a.png,b.png]

One L-BFGS run per (target, size, precision) to the largest checkpoint; the loss at each
checkpoint is measured on the float32 metrics encoder (whatever the run's precision) from the
image at that iteration. Prints a Markdown table; the last stdout line is the JSON of all rows.
"""

import time

from tf_propo import benchmarks, cli

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_list("targets", None, "Target images (default: the bundled samples).")
flags.DEFINE_list("sizes", ["128", "256"], "Output sizes in px.")
flags.DEFINE_list("checkpoints", ["100", "300", "1000"], "Iteration counts to report.")
flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], "Precision policies to compare.")
flags.DEFINE_integer("target_size", 256, "Short edge the target is resized to.")
flags.DEFINE_integer("seed", 1, "Noise seed.")
flags.DEFINE_string("vgg_weights", "normalized", "VGG19 weights source.")


def main(argv):
    del argv
    import importlib.resources
    import os

    import keras

    from tf_propo import gatys, image_io, metrics, precision, texture, weights
    from tf_propo.progress import Progress

    targets = FLAGS.targets or sorted(
        str(p) for p in (importlib.resources.files("tf_propo") / "samples").iterdir()
        if p.name.endswith(".png"))
    sizes = [int(s) for s in FLAGS.sizes]
    checkpoints = sorted(int(c) for c in FLAGS.checkpoints)
    rows = []
    for target_path in targets:
        target = image_io.resize_short_edge(image_io.read_image(target_path), FLAGS.target_size)
        keras.mixed_precision.set_global_policy("float32")
        evaluation = metrics.TextureMetrics(target, vgg_weights=FLAGS.vgg_weights)
        for size in sizes:
            noise = metrics.reference_noise(FLAGS.seed, size)
            noise_loss = float(evaluation.texture_loss(noise)[0])
            for name in FLAGS.precisions:
                policy = precision.apply(name)
                encoder = weights.pretrained_encoder(texture.TEXTURE_LAYERS,
                                                     source=FLAGS.vgg_weights)
                progress = Progress(checkpoints[-1], f"{os.path.basename(target_path)} "
                                    f"{size}px {policy}")
                marks = {}
                start = time.perf_counter()

                def on_step(loss, current, marks=marks, progress=progress, start=start):
                    progress.update(loss=loss)
                    if progress.count in checkpoints:
                        marks[progress.count] = (time.perf_counter() - start, current())

                gatys.synthesize(encoder, evaluation.target_grams, noise, checkpoints[-1],
                                 on_step=on_step)
                keras.mixed_precision.set_global_policy("float32")
                for steps, (seconds, image) in sorted(marks.items()):
                    loss = float(evaluation.texture_loss(image)[0])
                    rows.append({"target": os.path.basename(target_path), "size": size,
                                 "precision": policy, "steps": steps,
                                 "seconds": round(seconds, 2),
                                 "loss_ratio": loss / noise_loss, "texture_loss": loss})
    benchmarks.print_report(
        ["target", "size", "precision", "steps", "seconds", "loss / noise"],
        [[r["target"], r["size"], r["precision"], r["steps"], f"{r['seconds']:.1f}",
          f"{r['loss_ratio']:.2e}"] for r in rows], rows)


if __name__ == "__main__":
    cli.run(main)
