"""Quality per hour of training: what a wider network, other crops, the total-derivative
inputs or another precision buy on textures the model never saw, at equal training time.

    python -m tf_propo.benchmarks.quality_per_hour --targets=../shared/textures \
        --seconds=720 --variant="width 0.5=--width=0.5" \
        --variant="crop 64=--crop_size=64 --batch_size=16" --variant="total=--grad_mode=total"

For the base config (`--config`, the demo's by default) and each `--variant` (NAME=FLAGS, the
flags added to the base's), in one run on this machine:
1. probe: `--probe_steps` training steps measure the variant's images/s (all variants first,
   while nothing else runs); with --crop_sizes the probe's steps may all draw one size, but a
   step of any size holds about the same pixels, so its steps/s still sets the budget;
2. train: a fresh run of as many steps as `--seconds` of training allow at that rate, so its
   learning-rate schedule runs to its end (the figure is quality per training budget, not a
   snapshot of a longer run);
3. evaluate the result on the config's held-out textures (never trained on): texture_loss /
   noise and near-black pixels, as `python -m tf_propo.evaluate`; with
   `--protocol=held_out_half` also the loss against the half of each texture the model did
   not see over a real sample's ("unseen × real", 1 for a photograph of the texture).
Prints a Markdown table with each variant's loss over the base's; the last stdout line is the
JSON of all rows. Runs live in `--work_dir` and resume: run the same command again after an
interruption (plan.json keeps each variant's step count, so a resumed run trains to the same
budget).
"""

import json
import os

from tf_propo import benchmarks, cli, files
from tf_propo.benchmarks import training_runs
from tf_propo.errors import UsageError

from absl import flags

PROTOCOLS = ("exemplar", "held_out_half")  # evaluate.PROTOCOLS, without its flags

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "configs/demo.flags", "Flagfile of the base configuration; it "
                    "must hold textures out (--holdout) unless --eval_targets is given.")
flags.DEFINE_string("targets", None, "Training textures (a folder), as the training app's "
                    "--targets.")
flags.DEFINE_multi_string("variant", [], "NAME=FLAGS: a configuration to compare with the "
                          "base, its flags space-separated, e.g. \"width 0.5=--width=0.5\".")
flags.DEFINE_float("seconds", 720, "Training budget per configuration, in seconds of this "
                   "machine's measured throughput.", lower_bound=1)
flags.DEFINE_integer("probe_steps", 6, "Steps of the throughput probe (the first, tracing "
                     "step is not timed).", lower_bound=2)
flags.DEFINE_string("work_dir", "~/.cache/tf_propo/quality_per_hour", "Where the runs, their "
                    "evaluations and plan.json live.")
flags.DEFINE_list("eval_targets", None, "Evaluation textures (default: the textures the "
                  "config holds out).")
flags.DEFINE_integer("eval_size", 256, "Evaluation output size in px.", lower_bound=16)
flags.DEFINE_integer("eval_samples", 2, "Samples per evaluation texture.", lower_bound=1)
flags.DEFINE_integer("seed", 1, "Evaluation noise seed.")
flags.DEFINE_enum("protocol", "exemplar", PROTOCOLS, "Evaluation protocol "
                  "(python -m tf_propo.evaluate --protocol): exemplar scores against the whole "
                  "texture; held_out_half adds the unseen half's score over a real sample's.")


def _directory_name(name):
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def _held_out(model_dir, targets):
    # config.json read directly: tf_propo.model_dir imports Keras, which this driver of
    # subprocesses never needs.
    with open(os.path.join(model_dir, "config.json")) as f:
        names = json.load(f).get("held_out")
    if not names:
        raise UsageError(f"--config={FLAGS.config} holds no textures out: add --holdout=N to "
                         "it or give --eval_targets")
    return [os.path.join(targets, n) for n in names]


def main(argv):
    del argv
    if not FLAGS.targets or not os.path.isdir(FLAGS.targets):
        raise UsageError(f"--targets={FLAGS.targets}: expected a folder of textures")
    if not os.path.isfile(FLAGS.config):
        raise UsageError(f"--config={FLAGS.config}: no such file")
    variants = training_runs.parse_variants(FLAGS.variant)
    for path in FLAGS.eval_targets or []:
        if not os.path.isfile(path):
            raise UsageError(f"--eval_targets: {path}: no such file")
    work_dir = os.path.expanduser(FLAGS.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    plan_path = os.path.join(work_dir, "plan.json")
    plan = {}
    if os.path.exists(plan_path):
        with open(plan_path) as f:
            plan = json.load(f)

    # Every throughput probe before any training: the step counts are fixed while the machine
    # is quiet, and a slower machine later (or a resumed run) only takes longer.
    for name, extra in variants:
        entry = plan.get(name)
        if entry and entry["flags"] == extra and entry["seconds"] == FLAGS.seconds:
            continue
        probe = training_runs.timed_run(FLAGS.config, FLAGS.targets, FLAGS.probe_steps, extra)
        plan[name] = {"flags": extra, "seconds": FLAGS.seconds,
                      "images_per_second": probe["images_per_second"],
                      "batch_size": probe["batch_size"],
                      "steps": training_runs.budget_steps(probe["images_per_second"],
                                                          probe["batch_size"], FLAGS.seconds)}
        text = json.dumps(plan, indent=1)
        files.atomic_write(plan_path, lambda f: f.write(text.encode()))

    rows = []
    for name, extra in variants:
        entry = plan[name]
        # The step count in the name: a new plan (another --seconds) never resumes an old run.
        run_dir = os.path.join(work_dir, f"{_directory_name(name)}-{entry['steps']}")
        trained = training_runs.train(
            FLAGS.config, FLAGS.targets, run_dir, entry["steps"],
            [f"--checkpoint_every={max(1, entry['steps'] // 10)}", *extra])
        eval_targets = FLAGS.eval_targets or _held_out(run_dir, FLAGS.targets)
        result = training_runs.summarize(training_runs.evaluate_propo(
            run_dir, eval_targets, FLAGS.eval_size, FLAGS.eval_samples, FLAGS.seed,
            os.path.join(run_dir, "eval"), FLAGS.protocol))
        rows.append({**entry, **result, "variant": name, "flags": " ".join(extra),
                     # The run's own count: the probe's batch size is its steps' mean, which
                     # with --crop_sizes need not be the whole run's.
                     "images": trained["images"]})

    base_loss = rows[0]["loss_ratio"]
    print(f"Training budget {FLAGS.seconds:g} s per configuration; evaluation: "
          f"{rows[0]['targets']} textures, {FLAGS.eval_size}², "
          f"{FLAGS.eval_samples} samples, seed {FLAGS.seed}.")
    for r in rows:
        r["loss_vs_base"] = round(r["loss_ratio"] / base_loss, 3)
    unseen = FLAGS.protocol == "held_out_half"
    benchmarks.print_report(
        ["variant", "flags", "images/s", "steps", "images", "loss/noise", "× base", "dark %"]
        + (["unseen × real"] if unseen else []),
        [[r["variant"], r["flags"] or "(config)", f"{r['images_per_second']:.2f}", r["steps"],
          r["images"], f"{r['loss_ratio']:.3g}", f"{r['loss_vs_base']:.2f}",
          f"{r['dark_percent']:.2f}"]
         # "-": every texture's halves repeat, so none has an unseen half.
         + ([f"{r['unseen_vs_real']:.3g}" if "unseen_vs_real" in r else "-"] if unseen else [])
         for r in rows], rows)


if __name__ == "__main__":
    cli.run(main, tensorflow=False)  # a driver of training and evaluation subprocesses
