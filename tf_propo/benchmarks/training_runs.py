"""Training and evaluation runs in fresh processes, and the arithmetic of comparing training
configurations (no flags of its own, so any benchmark or test can import it)."""

import csv
import json
import os
import subprocess
import sys
import tempfile

from tf_propo.errors import UsageError


def _run(command, capture):
    """Run a tf_propo app; its last stdout line (JSON). A failure ends the benchmark with the
    app's own error and exit code."""
    print(" ".join(command[1:]), file=sys.stderr, flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.PIPE if capture else None)
    if result.returncode:
        sys.stderr.write(result.stderr or "")
        raise SystemExit(result.returncode)
    return json.loads(result.stdout.strip().splitlines()[-1])


def train_command(config, targets, model_dir, steps, train_flags):
    return [sys.executable, "-m", "tf_propo.train", f"--flagfile={config}",
            f"--targets={targets}", f"--model_dir={model_dir}", f"--steps={steps}",
            *train_flags]


def timed_run(config, targets, steps, train_flags):
    """Train `steps` steps of `config` plus `train_flags` in a throwaway model_dir, nothing
    held out; the training app's JSON record (its images_per_second leaves out the first,
    tracing step)."""
    with tempfile.TemporaryDirectory() as run_dir:
        return _run(train_command(config, targets, run_dir, steps,
                                  ["--holdout=0", f"--checkpoint_every={steps}", *train_flags]),
                    capture=True)


def train(config, targets, model_dir, steps, train_flags):
    """Train (or resume) a run to `steps` steps, its progress bar on stderr."""
    return _run(train_command(config, targets, model_dir, steps, train_flags), capture=False)


def evaluate_propo(model_dir, targets, size, samples, seed, out, protocol="exemplar"):
    """`evaluate --methods=propo` of a model_dir on `targets` (paths) under evaluate's
    `protocol`; the rows of its results.csv."""
    _run([sys.executable, "-m", "tf_propo.evaluate", f"--targets={','.join(targets)}",
          "--methods=propo", f"--model_dirs=propo={model_dir}", f"--samples={samples}",
          f"--size={size}", f"--seed={seed}", f"--protocol={protocol}", f"--out={out}"],
         capture=True)
    with open(os.path.join(out, "results.csv"), newline="") as f:
        return list(csv.DictReader(f))


BASE = "base"


def parse_variants(specs):
    """[(name, [flag, ...])] with the base (no extra flags) first."""
    variants = [(BASE, [])]
    for spec in specs:
        name, sep, text = spec.partition("=")
        name = name.strip()
        if not sep or not name or not text.strip():
            raise UsageError(f"--variant={spec!r}: expected NAME=FLAGS, e.g. "
                             "\"width 0.5=--width=0.5\"")
        if name in dict(variants):
            raise UsageError(f"--variant: the name {name!r} is used twice")
        flag_list = text.split()
        bad = [f for f in flag_list if not f.startswith("--")]
        if bad:
            raise UsageError(f"--variant={spec!r}: {bad[0]!r} is not a --flag")
        variants.append((name, flag_list))
    return variants


def budget_steps(images_per_second, batch_size, seconds):
    """Training steps that `seconds` buy at `images_per_second` (at least one)."""
    return max(1, int(images_per_second * seconds / batch_size))


def summarize(rows):
    """Means over evaluate's results.csv rows: texture_loss / noise, near-black % and, from a
    held_out_half evaluation, the unseen half's loss over a real sample's (unseen_vs_real)."""
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        raise UsageError("the evaluation produced no result")
    mean = lambda key, scale=1: scale * sum(float(r[key]) for r in ok) / len(ok)  # noqa: E731
    result = {"loss_ratio": mean("loss_ratio"), "dark_percent": mean("dark_fraction", 100),
              "targets": len(ok)}
    unseen = [float(r["unseen_ratio_to_real"]) for r in ok if r.get("unseen_ratio_to_real")]
    if unseen:  # textures whose halves repeat have none
        result["unseen_vs_real"] = sum(unseen) / len(unseen)
    return result
