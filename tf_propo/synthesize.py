"""Synthesise a texture: python -m tf_propo.synthesize [--method=quilt] [--target=IMG] --out=o.png

Progress goes to stderr. The last line of stdout is one JSON object: method,
seconds (the synthesis itself, model loading excluded), texture_loss and noise_texture_loss
(mean over samples; see tf_propo.metrics), loss_ratio, size, samples, seed, out, ... .
With --samples=K > 1 the K samples are written side by side into --out.
Bad input: one line on stderr, exit code 2, no output file.
"""

import json
import os
import statistics
import sys

from tf_propo import cli  # first: quiets TensorFlow's start-up logging
from tf_propo import memory
from tf_propo import ot
from tf_propo import shapes

from absl import flags

from tf_propo.errors import UsageError

import importlib.resources

DEFAULT_TARGET = "material_metall006.png"

FLAGS = flags.FLAGS
flags.DEFINE_enum("method", "quilt", shapes.METHODS, "Synthesis method. quilt (default): image "
                  "quilting, the texture stitched from blocks of the target, then polished "
                  "(--polish_steps): no training, about a second, the target's structure; add "
                  "--refine_steps=24 to match its statistics closely in a few more seconds. "
                  "propo: the progressive pseudo optimizer, by default the pretrained one "
                  "bundled with the package; po/adapo/propo with --model_dir: a model you "
                  "trained; gatys: optimisation from noise (slow, the quality reference); ot: "
                  "optimal transport of VGG features (no training), then polished.")
flags.DEFINE_list("target", None, "Target texture image (PNG/JPEG/WebP/BMP), or several, "
                  "comma-separated: files, folders (their images) and quoted glob patterns "
                  "('photos/*.jpg'); with several, --out is a folder. Default: the bundled "
                  f"public-domain sample {DEFAULT_TARGET}.")
flags.DEFINE_string("size", "256", "Output size in px: N for N x N, or WIDTHxHEIGHT (e.g. "
                    "2048x1024); each side 16 to 8192. quilt, gatys and ot make any shape, "
                    "the pseudo optimizers sides in multiples of 16.")
flags.DEFINE_integer("target_size", 256, "Resize the target so its short edge is this many "
                     "px before taking its statistics (the paper's 256); 0 keeps it as is.",
                     lower_bound=0)
flags.DEFINE_integer("samples", 1, "Number of samples (different noise) to synthesise.",
                     lower_bound=1, upper_bound=256)
flags.DEFINE_integer("seed", 0, "Random seed: the same seed gives the same texture.",
                     lower_bound=0, upper_bound=cli.MAX_SEED)
flags.DEFINE_string("out", "texture.png", "Output image (.png/.jpg/.webp/.bmp), written "
                    "atomically; K samples are laid out side by side. With several targets a "
                    "folder (created), which takes one TARGET_NAME.png per target.")
flags.DEFINE_integer("steps", 300, "gatys: optimiser iterations.", lower_bound=1)
flags.DEFINE_enum("optimizer", "lbfgs", ("lbfgs", "adam"), "gatys: L-BFGS-B with pixel "
                  "bounds (the authors' choice) or Adam with clipping.")
flags.DEFINE_float("learning_rate", 0.02, "gatys with --optimizer=adam: step size in pixel "
                   "units.", lower_bound=0.0)
flags.DEFINE_enum("precision", "auto", ("float32", "mixed_bfloat16", "mixed_float16", "auto"),
                  "Arithmetic of the VGG passes of the fast methods, quilt's polish and "
                  "--refine_steps (auto: bfloat16 on CPUs with AVX512-BF16/AMX and on recent "
                  "GPUs, else float32). gatys always runs in float32 (L-BFGS-B stops early on "
                  "bfloat16 gradients); the reported losses are float32.")
flags.DEFINE_string("vgg_weights", "normalized", "VGG19 weights: normalized (Gatys' "
                    "normalised VGG19, fetched and cached on first use), imagenet, or "
                    "file:PATH (.npz/.h5/.weights.h5/.pth/.whl).")
flags.DEFINE_integer("refine_steps", 0, "po/adapo/propo/ot/quilt: then this many L-BFGS "
                     "steps of Gatys' loss (one gradient each, under --precision) from the "
                     "fast method's result; 0 (default): none. 24 after quilt come close to "
                     "Gatys in a few seconds (docs/synthesis.md).", lower_bound=0)
flags.register_multi_flags_validator(
    ["refine_steps", "method"], lambda f: not (f["refine_steps"] and f["method"] == "gatys"),
    "--refine_steps refines a fast method's result; for gatys use --steps")
flags.DEFINE_string("model_dir", None, "po/adapo/propo: directory of a trained model "
                    "(python -m tf_propo.train). Default for propo: the bundled pretrained "
                    "model (tf_propo/pretrained/propo).")
flags.DEFINE_bool("save_stages", False, "po/adapo/propo: also write x[0..K] and the target as "
                  "a strip, OUT_stages.png.")
flags.DEFINE_enum("strategy", ot.DEFAULT_STRATEGY, ot.STRATEGIES,
                  "ot: how features are matched: covariance by cholesky / eigh / pca (one "
                  "step per layer), or sliced optimal transport with exact sorting (sliced) or "
                  "binned CDFs (cdf), --passes random rotations per layer.")
flags.DEFINE_integer("passes", ot.DEFAULT_PASSES, "ot with sliced/cdf: random rotations per "
                     "layer.", lower_bound=1)
flags.DEFINE_integer("polish_steps", None, "quilt and ot: then this many L-BFGS steps "
                     "of the texture loss on the shallow VGG layers (one gradient each, under "
                     "--precision), which even out the fine grain that quilting skews and "
                     "that OT's decoders blur; 0: none. Default: 4 for quilt, 6 for ot.",
                     lower_bound=0)
flags.register_multi_flags_validator(
    ["polish_steps", "method"],
    lambda f: f["polish_steps"] is None or f["method"] in ("quilt", "ot"),
    "--polish_steps: only --method=quilt and --method=ot are polished")
flags.DEFINE_bool("tileable", False, "A texture that wraps around (right edge into left, "
                  "bottom into top), so copies of it tile without a seam (ot: sides in "
                  "multiples of 16; the pseudo optimizers run circularly padded).")
flags.DEFINE_string("decoders", None, "ot: directory of trained decoders (python -m "
                    "tf_propo.train --flagfile=configs/decoders.flags). Default: the decoders "
                    "bundled with the package.")


def output_size(text, method, samples, tileable=False):
    """(height, width) of --size: "N" or "WxH"; UsageError (naming --size) otherwise."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
        raise UsageError(f"--size={text}: expected N or WIDTHxHEIGHT, e.g. 512 or 2048x1024")
    width, height = int(parts[0]), int(parts[-1])
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise UsageError(f"--size={text}: each side must be 16 to 8192 px")
    problem = shapes.size_problem(method, height, width, tileable)
    if problem:
        raise UsageError(f"--size={text}: {problem}")
    memory.check_fits(samples * width * height, f"--size={text} --samples={samples}",
                      "ask for fewer samples or a smaller size", method)
    return height, width


def _targets_and_outputs():
    """{target path: output path} of --target and --out, checked before any work."""
    from tf_propo import data, image_io

    if not FLAGS.target:
        specs = [str(importlib.resources.files("tf_propo") / "samples" / DEFAULT_TARGET)]
    else:
        specs = FLAGS.target
    paths = data.image_paths(specs, "--target")
    several = len(paths) > 1 or any(os.path.isdir(s) or data.is_pattern(s) for s in specs)
    if not several:
        image_io.check_output_path(FLAGS.out)
        outputs = {paths[0]: FLAGS.out}
    else:
        if os.path.splitext(FLAGS.out)[1].lower() in image_io.WRITABLE_EXTENSIONS \
                or (os.path.exists(FLAGS.out) and not os.path.isdir(FLAGS.out)):
            raise UsageError(f"--out={FLAGS.out}: with several targets --out is a folder, "
                             "which takes one TARGET_NAME.png per target")
        outputs, written_by = {}, {}
        for path in dict.fromkeys(paths):  # a file named twice is made once
            out = os.path.join(FLAGS.out, os.path.splitext(os.path.basename(path))[0] + ".png")
            if out in written_by:
                raise UsageError(f"--target: {written_by[out]} and {path} would both be written "
                                 f"to {out}")
            image_io.check_output_path(out)
            outputs[path], written_by[out] = out, path
    for path, out in outputs.items():
        if os.path.exists(out) and os.path.samefile(out, path):
            raise UsageError(f"--out={FLAGS.out}: {out} is the target itself; write the "
                             "texture elsewhere")
    return outputs


def _synthesizer(policy):
    """The TextureSynthesizer the flags describe, its model loaded once for every target;
    (synthesizer, extra JSON)."""
    from tf_propo import api, methods

    options = {"vgg_weights": FLAGS.vgg_weights, "refine_steps": FLAGS.refine_steps}
    if FLAGS.polish_steps is not None:  # otherwise the method's own default (the API's)
        options["polish_steps"] = FLAGS.polish_steps
    model, extra = None, {}
    if FLAGS.method == "ot":
        model = methods.load_optimal_transport(FLAGS.decoders, FLAGS.passes)
        options["strategy"] = FLAGS.strategy
    elif FLAGS.method == "gatys":
        options.update(steps=FLAGS.steps, optimizer=FLAGS.optimizer,
                       learning_rate=FLAGS.learning_rate)
    elif FLAGS.method in shapes.PSEUDO_OPTIMIZERS:
        model, model_dir = methods.load_pseudo_optimizer(FLAGS.model_dir, FLAGS.method)
        extra["model_dir"] = os.path.abspath(model_dir)
    return api.TextureSynthesizer(FLAGS.method, model, 0, policy, **options), extra


def main(argv):
    del argv
    from tf_propo import image_io

    outputs = _targets_and_outputs()
    height, width = output_size(FLAGS.size, FLAGS.method, FLAGS.samples, FLAGS.tileable)
    targets = {}
    for path in outputs:  # every target is read (and checked) before any work
        target = image_io.read_image(path)
        targets[path] = image_io.resize_short_edge(target, FLAGS.target_size) \
            if FLAGS.target_size else target
    largest = max(targets, key=lambda p: targets[p].shape[0] * targets[p].shape[1])
    shape = targets[largest].shape
    memory.check_fits(FLAGS.samples * height * width + shape[0] * shape[1],
                      f"--target={largest} ({shape[1]}x{shape[0]} px after "
                      f"--target_size={FLAGS.target_size}) with --size={FLAGS.size}",
                      "pass a smaller --target_size", FLAGS.method)

    cli.import_tensorflow_quietly()
    from tf_propo import methods, metrics, precision
    from tf_propo.progress import Progress

    policy = precision.apply(FLAGS.precision)
    synthesizer, model_extra = _synthesizer(policy)
    noise = metrics.reference_noise(FLAGS.seed, (height, width), FLAGS.samples)
    progress = Progress(len(targets), "synthesize") if len(targets) > 1 else None
    results, encoder = [], None
    for path, target in targets.items():
        # The method, --refine_steps and the report share what they compute from the target.
        prepared = methods.TargetStatistics(target)
        evaluation = prepared.metrics(FLAGS.vgg_weights, encoder)
        encoder = evaluation.encoder  # one encoder (and one trace per shape) for every target
        synthesis = synthesizer.synthesize(prepared, (height, width), FLAGS.samples,
                                           FLAGS.seed, FLAGS.tileable,
                                           progress=progress is None)
        images, seconds, extra = synthesis.images, synthesis.seconds, dict(synthesis.extra)
        extra.update(model_extra)
        beside = {}
        if "stage_images" in extra:
            stages = extra.pop("stage_images")
            extra["stages"] = [float(evaluation.texture_loss(x).mean()) for x in stages]
            if FLAGS.save_stages:
                beside["stages"] = image_io.tile_horizontally(
                    [x[0] for x in stages] + [image_io.resize_short_edge(target, height)])
        if "refine" in extra:
            refine = dict(extra["refine"])
            refine["texture_loss_before"] = float(
                evaluation.texture_loss(refine.pop("images_before")).mean())
            extra["refine"] = refine
        out = outputs[path]
        files = {out: image_io.tile_horizontally(list(images))}
        if "stages" in beside:
            extra["stages_out"] = os.path.abspath(os.path.splitext(out)[0] + "_stages.png")
            files[extra["stages_out"]] = beside["stages"]
        # A minute or more at 4096² on a CPU; with several targets their bar stands for it.
        if progress is None and methods.is_long_work(images):
            print(f"scoring {width}x{height}: the textures and the reference noise through "
                  f"VGG19", file=sys.stderr, flush=True)
        losses = evaluation.texture_loss(images)
        noise_losses = evaluation.texture_loss(noise)
        image_io.write_images(files)
        result = {
            "method": FLAGS.method,
            "seconds": round(seconds, 3),
            "texture_loss": float(losses.mean()),
            "noise_texture_loss": float(noise_losses.mean()),
            "loss_ratio": float(losses.mean() / noise_losses.mean()),
            "per_sample_texture_loss": [float(v) for v in losses],
            "size": height if height == width else f"{width}x{height}",
            "samples": FLAGS.samples,
            "seed": FLAGS.seed,
            "precision": "float32" if FLAGS.method == "gatys" else policy,
            "target": os.path.abspath(path),
            "out": os.path.abspath(out),
            **extra,
        }
        if FLAGS.samples > 1:
            result["diversity"] = evaluation.diversity(images)
        print(json.dumps(result), flush=True)
        results.append(result)
        if progress:
            progress.update()
    if len(results) > 1:
        print(json.dumps({
            "method": FLAGS.method, "targets": len(results), "out": os.path.abspath(FLAGS.out),
            "seconds_per_texture": round(sum(r["seconds"] for r in results) / len(results), 3),
            "loss_ratio_median": statistics.median(r["loss_ratio"] for r in results)}))


if __name__ == "__main__":
    cli.run(main, tensorflow=False)  # imported once the target and --out are checked
