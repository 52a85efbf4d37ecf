"""Train a pseudo optimizer with Keras' JAX backend: KERAS_BACKEND=jax python -m
tf_propo.train_jax --flagfile=configs/gpu.flags --model_dir=DIR

The same models, objective, flags and data as tf_propo.train, for hosts where TensorFlow has no
GPU build but JAX has (TensorFlow 2.21's wheels are built for CUDA 12; a CUDA 13 host, or one
where only jax[cuda] can be installed, still trains on its GPU this way). What it writes is a
compact model directory (tf_propo.model_dir: config.json, flags.txt, float16 weights.npz) that
every tf_propo command loads with TensorFlow, plus state.npz (float32 weights, Adam's moments,
the step) from which the same command resumes.

Differences from tf_propo.train, each refused with a clear error rather than ignored:
tfds targets, --mode=decoders, --distribution other than default (one device).
--grad_mode=total works (its inner gradient is jax.grad of probes, po.py). Summaries go to
model_dir/metrics.jsonl and preview strips to model_dir/previews/ instead of TensorBoard.
--max_seconds time-boxes a run. With --crop_sizes both trainers draw the same batches
(data.numpy_batch).
"""

import functools
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports Keras

from absl import flags  # noqa: E402

from tf_propo import cli  # noqa: E402
from tf_propo import train  # noqa: E402  (the training flags, model config and objective)
from tf_propo.errors import UsageError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_float("max_seconds", None, "Stop (with a checkpoint) once this many seconds of "
                   "training have passed in this invocation; run again to resume.",
                   lower_bound=1.0)

STATE = "state.npz"
METRICS = "metrics.jsonl"


def check_flags():
    if not FLAGS.model_dir:
        raise UsageError("--model_dir is required")
    if not FLAGS.targets:
        raise UsageError("--targets is required (an image or a folder of images)")
    if FLAGS.mode == "decoders":
        raise UsageError("--mode=decoders: train the OT decoders with python -m tf_propo.train")
    if FLAGS.targets.startswith("tfds:"):
        raise UsageError("tfds targets need tf.data; use a folder of images here")
    if FLAGS.distribution != "default":
        raise UsageError("--distribution: train_jax runs on one device")
    from tf_propo import data

    data.training_paths(FLAGS.targets, FLAGS.holdout)


def resolve_precision(precision, jax):
    """auto: bfloat16 on a JAX GPU (every GPU JAX's CUDA 12/13 wheels support does it at full
    rate from Ampere on; older ones still run it, slower), else the CPU rule of precision.py."""
    if precision != "auto":
        return precision
    if jax.default_backend() == "gpu":
        return "mixed_bfloat16"
    from tf_propo.precision import cpu_policy

    return cpu_policy()


def save_state(path, step, trainable, optimizer_values):
    import numpy as np

    from tf_propo.files import atomic_write

    arrays = {"step": np.asarray(step, np.int64)}
    arrays.update({f"trainable/{i}": np.asarray(v) for i, v in enumerate(trainable)})
    arrays.update({f"optimizer/{i}": np.asarray(v) for i, v in enumerate(optimizer_values)})
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_state(path, trainable, optimizer_values):
    """(step, trainable values, optimizer values) from state.npz, shapes checked."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as arrays:
            values = ([arrays[f"trainable/{i}"] for i in range(len(trainable))],
                      [arrays[f"optimizer/{i}"] for i in range(len(optimizer_values))])
            step = int(arrays["step"])
    except (KeyError, ValueError, OSError) as e:
        raise UsageError(f"{path}: cannot resume ({str(e).splitlines()[0]})") from None
    for loaded, wanted in zip(values, (trainable, optimizer_values)):
        if [a.shape for a in loaded] != [tuple(w.shape) for w in wanted]:
            raise UsageError(f"{path}: shapes differ from the configured model")
    return step, values[0], values[1]


def main(argv):
    del argv
    check_flags()
    import keras

    if keras.backend.backend() != "jax":
        raise UsageError(f"train_jax needs KERAS_BACKEND=jax, not {keras.backend.backend()}")
    try:
        import jax
    except ImportError:
        raise UsageError("train_jax needs JAX: pip install jax (jax[cuda13] for a GPU)") \
            from None
    from tf_propo import data, image_io, model_dir
    from tf_propo.progress import Progress

    config = train.model_config()
    model_dir.check_start(FLAGS.model_dir, config, FLAGS.init_from)
    if model_dir.has_checkpoints(FLAGS.model_dir):
        raise UsageError(f"--model_dir={FLAGS.model_dir} holds TensorFlow checkpoints; "
                         "resume it with python -m tf_propo.train")
    sizes = config.get("crop_sizes", [])
    images_seen = functools.partial(data.images_seen, FLAGS.crop_size, FLAGS.batch_size, sizes,
                                    FLAGS.seed)
    images = data.local_training_images(FLAGS.targets, max([FLAGS.crop_size] + sizes),
                                        FLAGS.resize, FLAGS.holdout)
    held_out = data.held_out_names(FLAGS.targets, FLAGS.holdout)
    if held_out is not None:
        config["held_out"] = held_out

    steps = train.total_steps()
    policy = resolve_precision(FLAGS.precision, jax)
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(FLAGS.seed)
    model = model_dir.build_model(config)
    objective = train.PseudoOptimizerObjective(model, **train.objective_options(config))
    schedule = train.learning_rate_schedule(steps)
    optimizer = keras.optimizers.Adam(schedule, beta_1=FLAGS.adam_beta1,
                                      epsilon=FLAGS.adam_epsilon)
    trainable_vars = model.trainable_variables
    frozen_vars = model.non_trainable_variables
    optimizer.build(trainable_vars)

    def write_back(trainable, optimizer_values):
        """Values (from jit or state.npz) into the Keras variables, for saving or previews."""
        for v, value in zip(trainable_vars, trainable):
            v.assign(value)
        for v, value in zip(optimizer.variables, optimizer_values):
            v.assign(value)

    state_path = os.path.join(FLAGS.model_dir, STATE)
    start_step = 0
    if os.path.exists(state_path):
        start_step, values, opt_values = load_state(state_path, trainable_vars,
                                                    optimizer.variables)
        write_back(values, opt_values)
        print(f"resuming {FLAGS.model_dir} at step {start_step}/{steps}", file=sys.stderr)
    elif FLAGS.init_from:
        print(f"starting from {model_dir.restore(FLAGS.init_from, model)}", file=sys.stderr)
    model_dir.hold(FLAGS.model_dir)
    model_dir.save_config(FLAGS.model_dir, config, train.flags_text())

    def compute_loss(trainable, frozen, batch):
        mapping = list(zip(trainable_vars, trainable)) + list(zip(frozen_vars, frozen))
        with keras.StatelessScope(state_mapping=mapping):
            prepared = jax.lax.stop_gradient(objective.prepare(batch))  # target statistics
            return objective.loss(batch, prepared)

    gradient = jax.value_and_grad(compute_loss, has_aux=True)

    @jax.jit
    def train_step(trainable, optimizer_values, frozen, batch):
        (_, scalars), grads = gradient(trainable, frozen, batch)
        trainable, optimizer_values = optimizer.stateless_apply(optimizer_values, grads,
                                                                trainable)
        return trainable, optimizer_values, scalars

    def checkpoint(step, trainable, optimizer_values):
        write_back(trainable, optimizer_values)
        save_state(state_path, step, trainable, optimizer_values)
        model_dir.write_compact(FLAGS.model_dir, model, config)

    def write_preview(step, batch):
        strip = keras.ops.convert_to_numpy(
            objective.preview({k: v[:1] for k, v in batch.items()}))[0]
        folder = os.path.join(FLAGS.model_dir, "previews")
        os.makedirs(folder, exist_ok=True)
        image_io.write_image(os.path.join(folder, f"step{step:07d}.png"), strip)

    if start_step >= steps:
        print(json.dumps({"model_dir": os.path.abspath(FLAGS.model_dir), "step": start_step,
                          "images": images_seen(start_step),
                          "note": "already trained to --steps"}))
        return
    trainable = [v.value for v in trainable_vars]
    frozen = [v.value for v in frozen_vars]
    optimizer_values = [v.value for v in optimizer.variables]
    stop = min(steps, start_step + FLAGS.run_steps) if FLAGS.run_steps else steps
    progress = Progress(stop - start_step, f"train_jax {config['mode']} {policy} "
                        f"{jax.default_backend()}")
    metrics_path = os.path.join(FLAGS.model_dir, METRICS)
    started = time.perf_counter()
    steady_start, steady_images, scalars, elapsed = None, 0, {}, 0.0
    step = start_step
    while step < stop:
        batch = data.step_batch(images, FLAGS.crop_size, FLAGS.batch_size, sizes, FLAGS.seed,
                                step)
        count = len(batch["target"])
        trainable, optimizer_values, device_scalars = train_step(
            trainable, optimizer_values, frozen, batch)
        step += 1
        if steady_start is None:  # the first step compiles
            jax.block_until_ready(device_scalars)
            steady_start = time.perf_counter()
        else:
            steady_images += count
        timed_out = FLAGS.max_seconds and time.perf_counter() - started > FLAGS.max_seconds
        last = step == stop or timed_out
        if step % FLAGS.summary_every == 0 or last:
            scalars = {k: float(v) for k, v in device_scalars.items()}
            elapsed = time.perf_counter() - steady_start
            record = {"step": step, "images_per_second": round(
                steady_images / max(elapsed, 1e-9), 2),
                "learning_rate": float(schedule(step) if callable(schedule) else schedule),
                **scalars}
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            progress.update(step - start_step - progress.count, loss=scalars["loss/total"])
        if step % FLAGS.checkpoint_every == 0 or last:
            checkpoint(step, trainable, optimizer_values)
        if step % FLAGS.image_every == 0 or last:
            write_back(trainable, optimizer_values)
            write_preview(step, batch)
        if timed_out:
            print(f"--max_seconds={FLAGS.max_seconds:g} reached at step {step}; run again to "
                  "resume", file=sys.stderr)
            break
    # Timed up to the last step's summary: the final checkpoint and preview (tens of seconds
    # at the first call, which compiles the preview) are not training. None: no step ran after
    # the compiling one.
    rate = round(steady_images / elapsed, 3) if steady_images else None
    print(json.dumps({"model_dir": os.path.abspath(FLAGS.model_dir), "step": step,
                      "images": images_seen(step), **objective.summary(scalars), "steady_seconds": round(elapsed, 2),
                      "images_per_second": rate,
                      "precision": policy, "backend": jax.default_backend()}))


if __name__ == "__main__":
    cli.run(main, tensorflow=False)
