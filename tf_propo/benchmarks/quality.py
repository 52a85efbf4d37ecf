"""Quality of every synthesis method on textures no model saw, against the tiers it must meet.

    python -m tf_propo.benchmarks.quality --targets=../shared/textures --out=/tmp/quality

Runs `python -m tf_propo.evaluate --protocol=held_out_half` once over the held-out textures
(every `--holdout`-th image of a folder, the split the bundled models were trained without;
or the files given) with every method of `--methods`, then prints one table: per method the
median and worst unseen × real over targets through a reflection-padded VGG19 (1: as close
to the unseen half as the seen half itself, a real photograph of the texture), its median
through the zero-padded VGG19 of the authors' loss (shown, not judged: it rewards a frame
drawn along the borders, see docs/evaluation.md), the share of targets within 2 and 5, the
blob measure (novel patches over the real half's, mean and worst target, in percent), the
grid measure (grid.grid_score over the seen half's, worst target), seconds per texture, and
whether the method meets its tier:

  fast      <= 1 s, median <= 2, >= 80% of targets <= 5, novel patches <= 0.1 points over
            the real half's on every target, no grid
  balanced  <= 10 s, median <= 1.2, >= 90% of targets <= 2, no novel-patch excess over 0.1,
            no grid
  ot        <= 2.5 s, median <= 3, no grid

"No grid": the grid measure at most GRID_EXCESS over the seen half's on every target.

The figures are evaluate's (results.csv and the grids stay in --out). Look at the grids too:
the numbers do not see seams or repetition. The last stdout line is the JSON of the table.
"""

import csv
import json
import os
import subprocess
import sys

from absl import flags

from tf_propo import cli
from tf_propo.errors import UsageError

# The judged ratio. Through the zero-padded VGG19 (evaluate's unseen_ratio_to_real) a
# refinement that paints bands along the borders scored 1.2 where the same texture without
# them scored 21 (nature_snowey): a frame would pass and a clean result fail.
JUDGED, ZERO_PADDED = "unseen_ratio_reflect", "unseen_ratio_to_real"

# tier: (seconds, median, (share of targets, within ratio), novel-patch excess) upper bounds.
TIERS = {
    "fast": {"seconds": 1.0, "median": 2.0, "share": (0.8, 5.0), "novel": 0.001},
    "balanced": {"seconds": 10.0, "median": 1.2, "share": (0.9, 2.0), "novel": 0.001},
    "ot": {"seconds": 2.5, "median": 3.0, "share": None, "novel": None},
}
# The grid measure's excess over the seen half's that every tier allows: the real textures
# score 0.2-1.1 themselves, a decoder's stride grid 5-16 after the polish.
GRID_EXCESS = 2.0

FLAGS = flags.FLAGS
if __name__ == "__main__":  # flags only for the app: the tests import its arithmetic
    flags.DEFINE_list("targets", None, "A folder (its held-out split is used) or image files.")
    flags.DEFINE_integer("holdout", 5, "With a folder: every N-th texture of its sorted list, "
                         "the split the bundled models were trained without.", lower_bound=1)
    flags.DEFINE_list("methods", ["quilt:fast", "quilt+24:balanced", "propo:fast",
                                  "ot:eigh:ot", "ot:sliced:ot", "ot:cdf:ot", "ot:cholesky:ot",
                                  "ot:pca:ot"],
                      "METHOD:TIER (or METHOD alone: reported, no tier) with METHOD as "
                      "evaluate --methods takes it; gatys is the quality reference.")
    flags.DEFINE_integer("samples", 2, "Samples per target and method.", lower_bound=1)
    flags.DEFINE_integer("size", 256, "Output size in px.", lower_bound=16)
    flags.DEFINE_integer("gatys_steps", 100, "gatys: L-BFGS steps.", lower_bound=1)
    flags.DEFINE_enum("precision", "auto", ("float32", "mixed_bfloat16", "mixed_float16",
                                            "auto"),
                      "evaluate --precision: the policy of the fast methods, quilt's polish and "
                      "the +N refinements (gatys is float32 whatever it says).")
    flags.DEFINE_string("out", None, "Directory for evaluate's results.csv, report.md and "
                        "grids.")
    flags.DEFINE_string("decoders", None, "ot: trained decoders to measure (default: the "
                        "bundled ones).")
    flags.DEFINE_integer("polish_steps", None, "quilt and ot: evaluate --polish_steps, for "
                         "every quilt and ot method of the run (default: each method's own).",
                         lower_bound=0)


def parse_methods(specs):
    """[(evaluate method, tier or None)] of METHOD[:TIER] specs (METHOD may hold a colon, as
    ot:eigh)."""
    parsed = []
    for spec in specs:
        method, _, tier = spec.rpartition(":")
        if tier not in TIERS:
            method, tier = spec, None
        if not method:
            raise UsageError(f"--methods: {spec!r} names no method")
        parsed.append((method, tier))
    return parsed


def summarize(rows, method):
    """The table's figures of one method from evaluate's CSV rows (strings), or None."""
    import numpy as np

    from tf_propo.report import novel_excess

    number = lambda value: float(value) if value not in ("", None) else None  # noqa: E731
    mine = [r for r in rows if r["method"] == method and r["status"] == "ok"
            and number(r.get(JUDGED)) is not None]
    if not mine:
        return None
    ratios = np.array([number(r[JUDGED]) for r in mine])
    zero_padded = [ratio for ratio in (number(r.get(ZERO_PADDED)) for r in mine)
                   if ratio is not None]
    novel = np.array([novel_excess({k: number(r[k]) for k in
                                    ("novel_patch_fraction", "real_novel_patch_fraction")})
                      for r in mine])
    grid = np.array([(number(r.get("grid_score")) or 0.0)
                     - (number(r.get("target_grid_score")) or 0.0) for r in mine])
    return {"method": method, "targets": len(mine),
            "median": float(np.median(ratios)), "worst": float(ratios.max()),
            "median_zero_padded": float(np.median(zero_padded)) if zero_padded else None,
            "worst_target": mine[int(ratios.argmax())]["target"],
            "within_2": float(np.mean(ratios <= 2)), "within_5": float(np.mean(ratios <= 5)),
            "novel_mean": float(novel.mean()), "novel_worst": float(novel.max()),
            "grid_worst": float(grid.max()),
            "grid_worst_target": mine[int(grid.argmax())]["target"],
            "seconds": float(np.mean([number(r["seconds_per_texture"]) for r in mine]))}


def verdict(summary, tier):
    """{criterion: passed} of a method's summary against a tier of TIERS."""
    bounds = TIERS[tier]
    checks = {"seconds": summary["seconds"] <= bounds["seconds"],
              "median": summary["median"] <= bounds["median"]}
    if bounds["share"]:
        share, ratio = bounds["share"]
        checks[f"{share:.0%} <= {ratio:g}"] = summary[f"within_{ratio:g}"] >= share
    if bounds["novel"] is not None:
        checks["novel"] = summary["novel_worst"] <= bounds["novel"]
    checks["grid"] = summary["grid_worst"] <= GRID_EXCESS
    return checks


def table(summaries):
    lines = ["| method | tier | median | median, zero-padded | worst (target) | <= 2 | <= 5 | "
             "novel % mean (worst) | grid, worst (target) | s/texture | meets tier |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        checks = s.get("checks")
        meets = ("yes" if all(checks.values()) else "no: " + ", ".join(
            k for k, ok in checks.items() if not ok)) if checks else ""
        zeros = s.get("median_zero_padded")
        zeros = "" if zeros is None else f"{zeros:.3g}"
        lines.append(f"| {s['method']} | {s.get('tier') or ''} | {s['median']:.3g} | "
                     f"{zeros} | {s['worst']:.3g} ({s['worst_target']}) | "
                     f"{s['within_2']:.0%} | {s['within_5']:.0%} | {100 * s['novel_mean']:.2f} "
                     f"({100 * s['novel_worst']:.2f}) | {s['grid_worst']:+.2g} "
                     f"({s['grid_worst_target']}) | {s['seconds']:.3g} | {meets} |")
    return "\n".join(lines)


def evaluate_command(targets, methods, samples, size, gatys_steps, precision, out,
                     decoders=None, polish_steps=None):
    """The one `evaluate --protocol=held_out_half` command line the benchmark runs; decoders
    and polish_steps: evaluate's defaults when None."""
    command = [sys.executable, "-m", "tf_propo.evaluate", "--protocol=held_out_half",
               f"--targets={','.join(targets)}", f"--methods={','.join(methods)}",
               f"--samples={samples}", f"--size={size}", f"--gatys_steps={gatys_steps}",
               f"--precision={precision}", f"--out={out}"]
    if decoders:
        command.append(f"--decoders={decoders}")
    if polish_steps is not None:
        command.append(f"--polish_steps={polish_steps}")
    return command


def _target_paths():
    from tf_propo import data

    if not FLAGS.targets:
        raise UsageError("--targets is required (a folder of textures or image files)")
    if len(FLAGS.targets) == 1 and os.path.isdir(FLAGS.targets[0]):
        return data.split_holdout(data.list_images(FLAGS.targets[0]), FLAGS.holdout)[1]
    return data.image_paths(FLAGS.targets)


def main(argv):
    del argv
    if not FLAGS.out:
        raise UsageError("--out is required (a directory)")
    methods = parse_methods(FLAGS.methods)
    targets = _target_paths()
    if not targets:
        raise UsageError(f"--targets={','.join(FLAGS.targets)}: no texture is held out")
    command = evaluate_command(targets, [m for m, _ in methods], FLAGS.samples, FLAGS.size,
                               FLAGS.gatys_steps, FLAGS.precision, FLAGS.out, FLAGS.decoders,
                               FLAGS.polish_steps)
    result = subprocess.run(command, stdout=subprocess.PIPE)  # progress on our stderr
    if result.returncode:
        raise UsageError(f"evaluate failed (exit {result.returncode})")
    with open(os.path.join(FLAGS.out, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    summaries = []
    for method, tier in methods:
        summary = summarize(rows, method)
        if summary:
            summary["tier"] = tier
            summary["checks"] = verdict(summary, tier) if tier else None
            summaries.append(summary)
    print(f"{len(targets)} held-out textures, {FLAGS.size}², {FLAGS.samples} samples, "
          f"--precision={FLAGS.precision}; "
          + ("" if FLAGS.polish_steps is None else f"--polish_steps={FLAGS.polish_steps}; ")
          + f"unseen × real through a reflection-padded VGG19 (1 = a real photograph); "
          f"details in {FLAGS.out}")
    print(table(summaries))
    print(json.dumps(summaries))


if __name__ == "__main__":
    cli.run(main, tensorflow=False)
