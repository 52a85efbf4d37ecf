"""Training throughput, float32 vs mixed_bfloat16 (or any precisions), same config, one run.

    python -m tf_propo.benchmarks.train_throughput [--steps=8] [-- extra train flags]

Runs `python -m tf_propo.train` once per precision in a fresh process and a fresh model_dir
(the demo config's model on the bundled samples by default) and prints images/s and the
ratio to the first precision; the first step (graph tracing) is excluded by the training app.
The last stdout line is JSON.
"""

import json
import subprocess
import sys
import tempfile

from tf_propo import cli

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
        with tempfile.TemporaryDirectory() as run_dir:
            command = [sys.executable, "-m", "tf_propo.train", f"--flagfile={FLAGS.config}",
                       f"--targets={targets}", "--holdout=0", f"--model_dir={run_dir}",
                       f"--steps={FLAGS.steps}", f"--precision={policy}",
                       f"--checkpoint_every={FLAGS.steps}", *FLAGS.train_flags]
            print(f"{policy}: {' '.join(command[1:])}", file=sys.stderr)
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode:
                sys.stderr.write(result.stderr)
                raise SystemExit(result.returncode)
            record = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append({"precision": policy, "images_per_second": record["images_per_second"],
                     "final_loss": sum(record["stage_losses"])})
    base = rows[0]["images_per_second"]
    print("| precision | images/s | × first | loss after the run |")
    print("|---|---|---|---|")
    for r in rows:
        r["ratio"] = round(r["images_per_second"] / base, 3)
        print(f"| {r['precision']} | {r['images_per_second']:.2f} | {r['ratio']:.2f} | "
              f"{r['final_loss']:.4g} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    cli.run(main)
