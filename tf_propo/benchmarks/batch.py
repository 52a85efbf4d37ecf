"""Throughput of the Python API: textures per second at one size for several batch sizes
(samples per TextureSynthesizer.generate call), per preset, on the device present, in one run.

    python -m tf_propo.benchmarks.batch --presets=propo,quilt,ot_eigh --batches=1,4,16

Each (preset, batch) is called once to trace and warm up, then timed over --repeats calls
(median) with the target's statistics computed beforehand, as a program generating many
textures of one target would. Prints a Markdown table; the last stdout line is the JSON of
all rows.
"""

import os
import statistics
import time

from absl import flags

from tf_propo import benchmarks, cli, shapes

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["propo", "quilt", "ot_eigh"], "Presets (tf_propo.list_presets).")
flags.DEFINE_list("batches", ["1", "4", "16"], "Samples per generate call.")
flags.DEFINE_integer("size", 256, "Output side in px.", lower_bound=16)
flags.DEFINE_string("target", None, "Target image (default: the bundled metal sample).")
flags.DEFINE_integer("repeats", 1, "Timed calls per row (median).", lower_bound=1)


def device_name():
    """The accelerator TensorFlow uses, or the CPU's core count."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return details.get("device_name", "GPU")
    return f"CPU, {os.cpu_count()} cores"


def main(argv):
    del argv
    import tf_propo
    from tf_propo import image_io
    from tf_propo.errors import UsageError
    from tf_propo.progress import Progress

    method = {p.name: p.method for p in tf_propo.list_presets()}
    unknown = [p for p in FLAGS.presets if p not in method]
    if unknown:
        raise UsageError(f"--presets: unknown {', '.join(unknown)} (one of "
                         f"{', '.join(sorted(method))})")
    for name in FLAGS.presets:
        problem = shapes.size_problem(method[name], FLAGS.size, FLAGS.size)
        if problem:
            raise UsageError(f"--size={FLAGS.size}: {problem} (--presets={name})")
    try:
        batches = [int(b) for b in FLAGS.batches]
    except ValueError:
        batches = [0]
    if min(batches) < 1:
        raise UsageError(f"--batches={','.join(FLAGS.batches)}: positive integers expected")
    target = FLAGS.target or os.path.join(os.path.dirname(os.path.dirname(__file__)),
                                          "samples", "material_metall006.png")
    image = image_io.read_image(target)
    device = device_name()
    progress = Progress(len(FLAGS.presets) * len(batches), "batch benchmark")
    rows = []
    for name in FLAGS.presets:
        synth = tf_propo.TextureSynthesizer.from_preset(name)
        prepared = synth.statistics(image)
        for batch in batches:
            synth.generate(prepared, size=FLAGS.size, samples=batch, seed=1)  # warm up
            times = []
            for _ in range(FLAGS.repeats):
                start = time.perf_counter()
                synth.generate(prepared, size=FLAGS.size, samples=batch, seed=2)
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            rows.append({"preset": name, "batch": batch, "size": FLAGS.size,
                         "seconds": seconds, "textures_per_second": batch / seconds,
                         "device": device})
            progress.update()
    for row in rows:
        first = next(r for r in rows if r["preset"] == row["preset"])
        row["speedup"] = row["textures_per_second"] / first["textures_per_second"]
    print()
    benchmarks.print_report(
        ["preset", "batch", f"seconds per call at {FLAGS.size}²", "textures / s",
         f"× batch {batches[0]}", "device"],
        [[r["preset"], r["batch"], f"{r['seconds']:.2f}", f"{r['textures_per_second']:.2f}",
          f"{r['speedup']:.2f}", r["device"]] for r in rows], rows)


if __name__ == "__main__":
    cli.run(main)
