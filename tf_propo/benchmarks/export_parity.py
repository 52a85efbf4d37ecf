"""How close each TFLite variant's textures are to Keras', over many targets and noises, in one
run.

    python -m tf_propo.benchmarks.export_parity --targets=../shared/textures --size=256 \
        --seeds=3 --quantizations=none,fp16,dynamic,int8

export's own parity check runs one sample. One sample is not enough to judge a quantization
here: a pseudo optimizer is chaotic where it draws a saturated blob (a tiny change of its input
or weights moves the blob), so the image error and the loss ratio of a single sample mostly say
where the blobs fell. Every (target, seed) pair runs through Keras (float32) and each variant
with the same target and noise, and a control row runs Keras itself with the noise moved by
±--control_epsilon: what the model's own sensitivity makes of a change far below 8 bits. Per
variant it prints the median and worst relative image error and the texture-loss ratio to
Keras (geometric mean with a 95% interval over the samples, the ratio of the mean losses, and
the share of samples within 5%). The last stdout line is the JSON of all rows.

--targets: folders and image files; images the model was trained on are left out (by name,
where its training folder is here: data.unseen_by), so it is judged on textures it never saw.
"""

import math
import os

from absl import flags

from tf_propo import benchmarks, cli

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Trained po/adapo/propo model directory (default: the "
                    "bundled pretrained ProPO).")
flags.DEFINE_list("targets", None, "Folders and image files; the ones the model trained on "
                  "are left out (default: the textures its config.json lists as held out, "
                  "where its training folder is here, else the bundled samples).")
flags.DEFINE_integer("size", 256, "Output and target size in px (multiple of 16).",
                     lower_bound=16)
flags.DEFINE_integer("seeds", 3, "Noises per target.", lower_bound=1)
flags.DEFINE_list("quantizations", ["none", "fp16", "dynamic", "int8_weights", "int8_mixed",
                                    "int8"],
                  "TFLite variants (tf_propo/export/tflite.py).")
flags.DEFINE_float("control_epsilon", 1e-4, "The Keras control's noise change (the noise is "
                   "U(-1, 1); an 8-bit step is 7.8e-3). 0 leaves the control out.",
                   lower_bound=0)
flags.DEFINE_integer("threads", 2, "LiteRT (XNNPACK) threads.", lower_bound=1)

WITHIN = 0.05  # the int8 goal: texture loss within 5% of Keras'


def summarize(name, errors, ratios):
    """One row: image error (median, max) and loss ratio statistics of paired samples."""
    import numpy as np

    logs = np.log(np.asarray(ratios, np.float64))
    half_width = 1.96 * logs.std(ddof=1) / math.sqrt(len(logs)) if len(logs) > 1 else math.nan
    return {"variant": name, "samples": len(ratios),
            "median_image_error": float(np.median(errors)),
            "max_image_error": float(np.max(errors)),
            "geomean_loss_ratio": float(np.exp(logs.mean())),
            "loss_ratio_low": float(np.exp(logs.mean() - half_width)),
            "loss_ratio_high": float(np.exp(logs.mean() + half_width)),
            "within_5_percent": float(np.mean(np.abs(np.asarray(ratios) - 1) <= WITHIN))}


def main(argv):
    del argv
    import importlib.resources

    import numpy as np

    from tf_propo import data, image_io, metrics, model_dir as model_dirs
    from tf_propo.benchmarks import litert
    from tf_propo.errors import UsageError
    from tf_propo.export import parity
    from tf_propo.export import pipeline as pipelines
    from tf_propo.export import run as runner
    from tf_propo.export import tflite
    from tf_propo.progress import Progress

    tflite.check_quantizations(FLAGS.quantizations, "--quantizations")
    if not FLAGS.model_dir:
        from tf_propo import methods

        FLAGS.model_dir = methods.bundled_propo()
    samples = str(importlib.resources.files("tf_propo") / "samples")
    config = model_dirs.load_config(FLAGS.model_dir)
    if FLAGS.targets:
        paths = data.unseen_by(config, data.image_paths(FLAGS.targets))
        if not paths:
            raise UsageError("--targets: every image is one the model was trained on")
    else:
        trained_on = config.get("targets") or ""
        paths = data.unseen_by(config, data.image_paths([trained_on])) \
            if config.get("held_out") and os.path.isdir(trained_on) else []
        paths = paths or data.image_paths([samples])
    size = FLAGS.size
    pipeline, _ = pipelines.load_pipeline(FLAGS.model_dir)
    keras_fn = litert.keras_synthesis(pipeline)
    interpreters = {quantize: (interp, file_bytes) for quantize, interp, file_bytes
                    in litert.variants(pipeline, size, FLAGS.quantizations, FLAGS.threads)}
    # (row, output, reference): every variant against Keras, and the controls.
    comparisons = [(q, q, "keras") for q in FLAGS.quantizations]
    rounded_fn = None
    if FLAGS.control_epsilon:
        comparisons.append(("keras, noise moved", "keras control", "keras"))
    if "fp16" in FLAGS.quantizations:
        # What fp16 should be if the conversion is exact: Keras on the same rounded weights.
        rounded, _ = pipelines.load_pipeline(FLAGS.model_dir)
        rounded.set_weights([w.astype(np.float16).astype(np.float32)
                             for w in rounded.get_weights()])
        rounded_fn = litert.keras_synthesis(rounded)
        comparisons += [("keras, fp16-rounded weights", "keras fp16 weights", "keras"),
                        ("fp16 vs keras on its weights", "fp16", "keras fp16 weights")]
    errors = {row: [] for row, _, _ in comparisons}
    ratios = {row: [] for row, _, _ in comparisons}
    losses = {}
    progress = Progress(len(paths) * FLAGS.seeds, "export parity")
    for path in paths:
        target = runner.square_target(image_io.read_image(path), size)[None] \
            .astype(np.float32)
        evaluation = metrics.TextureMetrics(target[0])
        for seed in range(FLAGS.seeds):
            noise = runner.noise(seed, size)
            outputs = {"keras": keras_fn(target, noise).numpy()}
            for quantize, (interp, _) in interpreters.items():
                outputs[quantize] = runner.run(interp, target, noise)
            if FLAGS.control_epsilon:
                moved = noise + FLAGS.control_epsilon * runner.noise(10_000 + seed, size)
                outputs["keras control"] = keras_fn(target, moved).numpy()
            if rounded_fn is not None:
                outputs["keras fp16 weights"] = rounded_fn(target, noise).numpy()
            names = list(outputs)
            sample_losses = dict(zip(names, evaluation.texture_loss(
                np.concatenate([outputs[n] for n in names])).astype(np.float64)))
            for name in names:
                losses.setdefault(name, []).append(sample_losses[name])
            for row, output, reference in comparisons:
                errors[row].append(parity.image_relative_error(outputs[output],
                                                               outputs[reference]))
                ratios[row].append(sample_losses[output] / sample_losses[reference])
            progress.update()
    rows = []
    for row_name, output, reference in comparisons:
        row = summarize(row_name, errors[row_name], ratios[row_name])
        row["mean_loss_ratio"] = float(np.mean(losses[output]) / np.mean(losses[reference]))
        row["bytes"] = interpreters[output][1] if output in interpreters else None
        rows.append(row)
    control = (f"Keras with the noise moved by ±{FLAGS.control_epsilon:g}"
               if FLAGS.control_epsilon else "none")
    print(f"\nmodel: {FLAGS.model_dir}; {len(paths)} targets x {FLAGS.seeds} noises at "
          f"{size}²; control: {control}\n")
    benchmarks.print_report(
        ["variant", "MB", "image error median / max", "loss / Keras' (geo. mean, 95%)",
         "mean loss / Keras'", f"samples within {WITHIN:.0%}"],
        [[r["variant"], f"{r['bytes'] / 1e6:.1f}" if r["bytes"] else "-",
          f"{r['median_image_error']:.2g} / {r['max_image_error']:.2g}",
          f"{r['geomean_loss_ratio']:.3g} ({r['loss_ratio_low']:.3g}–"
          f"{r['loss_ratio_high']:.3g})", f"{r['mean_loss_ratio']:.3g}",
          f"{r['within_5_percent']:.0%}"] for r in rows], rows)


if __name__ == "__main__":
    cli.run(main)
