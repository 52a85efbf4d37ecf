"""Training throughput, float32 vs mixed_bfloat16 (or any precisions), same config, one run.

    python -m tf_propo.benchmarks.train_throughput [--steps=8] [-- extra train flags]

Runs `python -m tf_propo.train` once per precision in a fresh process and a fresh model_dir
(the demo config's model on the bundled samples by default) and prints images/s and the
ratio to the first precision; the first step (graph tracing) is excluded by the training app.
The last stdout line is JSON.
"""


from tf_propo import benchmarks, cli
from tf_propo.benchmarks import training_runs

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], "Policies to compare.")
flags.DEFINE_integer("steps", 8, "Training steps per run (the first is excluded).")
flags.DEFINE_string("config", "configs/demo.flags", "Flagfile of the model to time.")
flags.DEFINE_string("targets", None, "Training images (default: the bundled samples).")
flags.DEFINE_list("train_flags", [], "Extra flags for the training app, e.g. "
                  "--train_flags=--width=1.0,--crop_size=224")


def main(argv):
    del argv
    import importlib.resources

    targets = FLAGS.targets or str(importlib.resources.files("tf_propo") / "samples")
    rows = []
    for policy in FLAGS.precisions:
        record = training_runs.timed_run(FLAGS.config, targets, FLAGS.steps,
                                         [f"--precision={policy}", *FLAGS.train_flags])
        rows.append({"precision": policy, "images_per_second": record["images_per_second"],
                     "final_loss": sum(record["stage_losses"])})
    base = rows[0]["images_per_second"]
    for r in rows:
        r["ratio"] = round(r["images_per_second"] / base, 3)
    benchmarks.print_report(
        ["precision", "images/s", "× first", "loss after the run"],
        [[r["precision"], f"{r['images_per_second']:.2f}", f"{r['ratio']:.2f}",
          f"{r['final_loss']:.4g}"] for r in rows], rows)


if __name__ == "__main__":
    cli.run(main)
