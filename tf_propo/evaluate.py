"""Evaluate methods on targets, the paper's table: python -m tf_propo.evaluate
--targets=DIR --methods=gatys,propo,ot --model_dirs=propo=RUN --samples=3 --size=256 --out=DIR

For every target and method: quality (texture_loss on the paper's layers, and its ratio to the
loss of uniform noise from the same seed), diversity (relu4_1 L1 over the K samples), seconds
per texture, and peak memory of the process while the method ran. Writes into --out:
  results.csv   one row per (target, method), `status` ok or why the method did not run
  report.md     the paper's table (means over targets) with ratios to Gatys, then per target
  grids/*.png   per target: a row per method, target | samples
Protocols (--protocol): exemplar, the paper's: every method sees the whole target and quality is
the loss against it, which rewards copying the exemplar's exact statistics (Gatys reaches ~1e-6
of noise); held_out_half: each target is cut into two halves across its long side, the methods
see the first only, and quality is also measured against the second, a real sample of the same
texture no method saw (`unseen_*` columns), beside the first half's own loss against it (`real`:
what a photograph of the texture scores).
Methods: gatys, po, adapo, propo (each needs its --model_dirs entry; propo defaults to the
bundled model), quilt (image quilting; quilt:graph as the exported model quilts,
tf_propo.graph_quilting), ot or ot:STRATEGY; METHOD+N adds N Gatys steps after
a fast method (its result as an initialisation), timed with it.
A method whose model is missing is reported as missing, not skipped. Progress on stderr; the
last stdout line is one JSON object (out, rows).
"""

import csv
import json
import os
import time

from tf_propo import cli

from absl import flags

from tf_propo import memory
from tf_propo.errors import UsageError

PROTOCOLS = ("exemplar", "held_out_half")

FLAGS = flags.FLAGS
flags.DEFINE_list("targets", None, "Target images and/or folders of images.")
flags.DEFINE_list("methods", ["gatys", "propo", "ot"], "Methods: gatys, po, adapo, propo, "
                  "quilt, quilt:graph (as the exported model quilts), ot, ot:STRATEGY "
                  "(cholesky, eigh, pca, cdf, sliced); a fast method "
                  "followed by +N (e.g. quilt+24) refines its result with N L-BFGS steps of "
                  "Gatys' loss, as synthesize --refine_steps, and counts their time.")
flags.DEFINE_list("model_dirs", [], "METHOD=DIR pairs for po/adapo/propo, e.g. "
                  "propo=~/.cache/tf_propo/runs/demo.")
flags.DEFINE_string("decoders", None, "ot: trained decoders (default: the bundled ones).")
flags.DEFINE_integer("samples", 3, "Samples per target and method (diversity needs >= 2).",
                     lower_bound=1, upper_bound=256)
flags.DEFINE_integer("size", 256, "Output size in px (a multiple of 16).", lower_bound=16,
                     upper_bound=8192)
flags.DEFINE_integer("target_size", 256, "Short edge the target is resized to.", lower_bound=16)
flags.DEFINE_integer("gatys_steps", 300, "gatys: L-BFGS iterations.", lower_bound=1)
flags.DEFINE_integer("seed", 1, "Noise seed, the same for every method.", lower_bound=0,
                     upper_bound=cli.MAX_SEED)
flags.DEFINE_string("out", None, "Output directory (created; existing files are replaced).")
flags.DEFINE_enum("protocol", "exemplar", PROTOCOLS, "exemplar: the methods see the whole "
                  "target, quality is the loss against it (the paper's). held_out_half: they see "
                  "one half of each target, quality is also measured against the other half "
                  "(unseen_* columns) and set beside that of the seen half itself (a real "
                  "sample of the texture).")
flags.DEFINE_integer("polish_steps", None, "quilt and ot: L-BFGS steps after the fast "
                     "result, as synthesize --polish_steps (0: none; default: synthesize's).",
                     lower_bound=0)
flags.DEFINE_bool("tileable", False, "Textures that wrap around, as synthesize --tileable "
                  "(the seam_ratio column: about 1 when they tile without a seam).")
flags.DEFINE_enum("precision", "float32", ("float32", "mixed_bfloat16", "mixed_float16", "auto"),
                  "Policy the fast methods (po, adapo, propo, ot, quilt's polish) and the +N "
                  "refinements are built and timed under (auto: mixed_bfloat16 on CPUs with "
                  "AVX512-BF16 or AMX and on recent GPUs). Gatys always runs in float32 "
                  "(L-BFGS-B stops early on bfloat16 gradients); every loss is measured in "
                  "float32.")

COLUMNS = ("target", "method", "status", "precision", "samples", "size",
           "seconds_per_texture", "texture_loss", "noise_texture_loss", "loss_ratio",
           "diversity", "peak_memory_mb", "dark_fraction", "target_dark_fraction",
           "novel_patch_fraction", "real_novel_patch_fraction", "grid_score",
           "target_grid_score", "seam_ratio", "unseen_texture_loss",
           "real_unseen_texture_loss", "unseen_ratio_to_real", "unseen_ratio_reflect")


def _targets():
    from tf_propo import data

    return data.image_paths(FLAGS.targets)


def _parse_methods():
    """(spec, method, strategy, refine steps) per --methods entry and the --model_dirs; checked
    before TensorFlow is imported, so a typo fails at once."""
    from tf_propo import shapes
    from tf_propo.ot import STRATEGIES

    parsed = []
    for spec in FLAGS.methods:
        method, plus, refine = spec.partition("+")
        if plus and not (refine.isdigit() and int(refine) > 0):
            raise UsageError(f"--methods: {spec!r}: +N takes a positive number of Gatys steps")
        name, _, strategy = method.partition(":")
        if name not in shapes.METHODS:
            raise UsageError(f"--methods: unknown method {spec!r}; known: "
                             f"{', '.join(shapes.METHODS)}, ot:STRATEGY")
        if strategy and not (name == "ot" and strategy in STRATEGIES
                             or name == "quilt" and strategy == "graph"):
            raise UsageError(f"--methods: {spec!r}: only ot takes a strategy, one of "
                             f"{', '.join(STRATEGIES)}, and quilt :graph")
        if plus and name == "gatys":
            raise UsageError(f"--methods: {spec!r}: +N refines a fast method's result; for "
                             "gatys use --gatys_steps")
        parsed.append((spec, name, strategy or None, int(refine or 0)))
    model_dirs = {}
    for pair in FLAGS.model_dirs:
        method, sep, path = pair.partition("=")
        if not sep or method not in ("po", "adapo", "propo"):
            raise UsageError(f"--model_dirs: {pair!r} is not po=DIR, adapo=DIR or propo=DIR")
        model_dirs[method] = os.path.expanduser(path)
    return parsed, model_dirs


def peak_memory_reset():
    """Reset the process's peak RSS (Linux: /proc/self/clear_refs); False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory_mb():
    """Peak resident memory of this process since the last reset, in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Runner:
    """Loads each method's model once and synthesises with it; a model that cannot be loaded
    makes the method 'missing' with the reason."""

    def __init__(self, model_dirs, policy):
        self.model_dirs = model_dirs
        self.policy = policy
        self.loaded = {}

    def model(self, name):
        from tf_propo import methods, precision

        if name not in self.loaded:
            try:
                with precision.building_under(self.policy):
                    if name == "ot":
                        self.loaded[name] = methods.load_optimal_transport(FLAGS.decoders)
                    elif name in ("gatys", "quilt"):
                        self.loaded[name] = None
                    else:
                        if name not in self.model_dirs and name != "propo":
                            raise UsageError(f"no --model_dirs={name}=DIR given")
                        self.loaded[name], _ = methods.load_pseudo_optimizer(
                            self.model_dirs.get(name), name)  # propo: the bundled model
            except UsageError as e:
                self.loaded[name] = e
        return self.loaded[name]

    def run(self, name, strategy, refine, target):
        """(images, seconds) of one method on `target` (methods.TargetStatistics), with
        `refine` Gatys steps after a fast one."""
        from tf_propo import api

        model = self.model(name)
        if isinstance(model, UsageError):
            raise model
        polish = {} if FLAGS.polish_steps is None else {"polish_steps": FLAGS.polish_steps}
        synthesizer = api.TextureSynthesizer(
            name, model, 0, self.policy, strategy=strategy, steps=FLAGS.gatys_steps,
            refine_steps=refine, graph=strategy == "graph", **polish)
        result = synthesizer.synthesize(target, FLAGS.size, FLAGS.samples, FLAGS.seed,
                                        FLAGS.tileable)
        return result.images, result.seconds


def main(argv):
    del argv
    import shlex
    import sys

    import numpy as np

    from tf_propo import image_io
    from tf_propo.files import atomic_write, check_creatable
    from tf_propo.progress import Progress

    if not FLAGS.out:
        raise UsageError("--out is required (a directory)")
    if os.path.exists(FLAGS.out) and not os.path.isdir(FLAGS.out):
        raise UsageError(f"--out={FLAGS.out} exists and is not a directory")
    check_creatable(os.path.join(FLAGS.out, "report.md"), f"--out={FLAGS.out}")
    if FLAGS.size % 16:
        raise UsageError(f"--size={FLAGS.size} must be a multiple of 16")
    specs, model_dirs = _parse_methods()
    targets = _targets()
    names = {}
    for path in targets:  # rows and grids are named after the file
        other = names.setdefault(os.path.basename(path), path)
        if other != path:
            raise UsageError(f"--targets: {other} and {path} have the same file name; their "
                             "rows and grids would be confused")
    images = {path: image_io.resize_short_edge(image_io.read_image(path), FLAGS.target_size)
              for path in targets}  # every target is read (and checked) before any work
    largest = max(images, key=lambda p: images[p].shape[0] * images[p].shape[1])
    memory.check_fits(FLAGS.samples * FLAGS.size**2 + images[largest][..., 0].size,
                      f"--size={FLAGS.size} --samples={FLAGS.samples} with {largest} at "
                      f"--target_size={FLAGS.target_size}",
                      "ask for fewer samples, a smaller size or a smaller --target_size")
    cli.import_tensorflow_quietly()
    from tf_propo import grid, methods, metrics, precision, report

    policy = precision.resolve(FLAGS.precision)
    runner = Runner(model_dirs, policy)
    progress = Progress(len(targets) * len(specs), "evaluate")
    rows, grids, encoder, reflect_encoder = [], {}, None, None
    for path, whole in images.items():
        name = os.path.basename(path)
        target, unseen, held_out, real_unseen = whole, None, None, None
        if FLAGS.protocol == "held_out_half":
            target, unseen = metrics.split_halves(whole)
        # Every method shares what it computes from the target, and one encoder serves every
        # target: loaded once, and Gatys' graph traced once per size.
        prepared = methods.TargetStatistics(target)
        evaluation = prepared.metrics(encoder=encoder)
        encoder = evaluation.encoder
        if unseen is not None and not metrics.halves_repeat(target, unseen):
            held_out = metrics.TextureMetrics(unseen, encoder=evaluation.encoder)
            real_unseen = float(held_out.texture_loss(target)[0])
            # The same through a reflection-padded VGG19: no zero-padded frame in the
            # statistics (docs/known-problems.md: it favours outputs that draw it).
            held_out_reflect = metrics.TextureMetrics(unseen, encoder=reflect_encoder,
                                                      padding="reflect")
            reflect_encoder = held_out_reflect.encoder
            real_reflect = float(held_out_reflect.texture_loss(target)[0])
        noise = metrics.reference_noise(FLAGS.seed, FLAGS.size, FLAGS.samples)
        noise_loss = float(evaluation.texture_loss(noise).mean())
        target_dark = metrics.dark_fraction(target)
        target_grid = grid.grid_score(target)
        real_novel = None if unseen is None else metrics.novel_patch_fraction(unseen, target)
        grid_rows = []
        for spec, method, strategy, refine in specs:
            row = dict.fromkeys(COLUMNS)
            row.update({"target": name, "method": spec, "samples": FLAGS.samples,
                        "precision": "float32" if method == "gatys" else policy,
                        "size": FLAGS.size, "noise_texture_loss": noise_loss})
            peak_memory_reset()
            try:
                result, seconds = runner.run(method, strategy, refine, prepared)
            except UsageError as e:
                row["status"] = f"missing ({e})"
            else:
                loss = float(evaluation.texture_loss(result).mean())
                row.update({"status": "ok", "seconds_per_texture": seconds / FLAGS.samples,
                            "texture_loss": loss, "loss_ratio": loss / noise_loss,
                            "diversity": (evaluation.diversity(result)
                                          if FLAGS.samples > 1 else None),
                            "peak_memory_mb": peak_memory_mb(),
                            "dark_fraction": metrics.dark_fraction(result),
                            "target_dark_fraction": target_dark,
                            "novel_patch_fraction": metrics.novel_patch_fraction(result, target),
                            "real_novel_patch_fraction": real_novel,
                            "grid_score": grid.grid_score(result),
                            "target_grid_score": target_grid,
                            "seam_ratio": metrics.seam_ratio(result)})
                if held_out:
                    unseen_loss = float(held_out.texture_loss(result).mean())
                    row.update({"unseen_texture_loss": unseen_loss,
                                "real_unseen_texture_loss": real_unseen,
                                "unseen_ratio_to_real": unseen_loss / real_unseen,
                                "unseen_ratio_reflect": float(held_out_reflect.texture_loss(
                                    result).mean()) / real_reflect})
                grid_rows.append(image_io.tile_horizontally(
                    [image_io.resize_short_edge(whole, FLAGS.size)] + list(result)))
            rows.append(row)
            progress.update()
        if grid_rows:
            grids[name] = grid_rows
    os.makedirs(os.path.join(FLAGS.out, "grids"), exist_ok=True)
    for name, grid_rows in grids.items():
        width = max(g.shape[1] for g in grid_rows)
        padded = [np.pad(g, [(0, 4), (0, width - g.shape[1]), (0, 0)], constant_values=1.0)
                  for g in grid_rows]
        image_io.write_image(os.path.join(FLAGS.out, "grids",
                                          os.path.splitext(name)[0] + ".png"),
                             np.concatenate(padded, axis=0)[:-4])

    def write_csv(f):
        import io

        text = io.StringIO()
        writer = csv.DictWriter(text, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        f.write(text.getvalue().encode())

    atomic_write(os.path.join(FLAGS.out, "results.csv"), write_csv)
    command = "python -m tf_propo.evaluate " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    summary = report.write_report(os.path.join(FLAGS.out, "report.md"), rows, command)
    print(json.dumps({"out": os.path.abspath(FLAGS.out), "rows": len(rows),
                      "summary": summary, "seconds": round(time.perf_counter()
                                                           - progress.start, 1)}))


if __name__ == "__main__":
    cli.run(main, tensorflow=False)  # imported once the targets are read
