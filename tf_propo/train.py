"""Train a model: python -m tf_propo.train --flagfile=configs/smoke.flags

Modes: po (one target texture), adapo (one stage, many targets: works on unseen targets),
propo (K progressive stages; many targets by default): the loss is the sum over stages of the
texture loss of each stage's output on that stage's own layers (the paper's). decoders: the
optimal-transport pipeline's per-layer decoders (tf_propo.ot.decoders), trained to reconstruct
images from their VGG features (--flagfile=configs/decoders.flags).

The run lives in --model_dir (see tf_propo.model_dir): config.json, flags.txt, checkpoints
every --checkpoint_every steps (kept: --keep_checkpoints), TensorBoard summaries in train/.
Run the same command again to resume: the step counter, LR schedule and data order continue
where the last checkpoint left them. Progress with ETA on stderr.
"""

import functools
import json
import os
import sys
import time

from tf_propo import cli
from tf_propo import distribute

from absl import flags

from tf_propo.errors import UsageError

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Directory of the run: checkpoints, config, summaries. "
                    "An existing run there is resumed.")
flags.DEFINE_enum("mode", "propo", ("po", "adapo", "propo", "decoders"), "po: one target; "
                  "adapo: one stage over many targets; propo: progressive stages; decoders: "
                  "the OT pipeline's per-layer decoders.")
flags.DEFINE_integer("stages", None, "Number of stages (default: 5 for propo, 1 otherwise).",
                     lower_bound=1)
flags.DEFINE_list("layers", None, "Texture-loss layers, shallow to deep (default: the authors' "
                  "conv1_1-after-ReLU, pool1..pool4 = relu1_1,pool1,pool2,pool3,pool4); "
                  "decoders: the layers to decode (default relu1_1,relu2_1,...,relu5_1).")
flags.DEFINE_string("targets", None, "Training textures: an image file, a folder of images, or "
                    "tfds:NAME (e.g. tfds:dtd).")
flags.DEFINE_integer("holdout", 0, "With a folder of targets: leave every N-th image (sorted "
                     "by name) out of training, for evaluation on unseen textures; the held-out "
                     "files are listed in config.json. 0: use all (the only value for one "
                     "image or a tfds dataset, whose other splits are unseen).", lower_bound=0)
flags.DEFINE_integer("resize", 256, "Resize training images so the short edge is this many px "
                     "before cropping (the authors' 256); 0 keeps them.", lower_bound=0)
flags.DEFINE_integer("crop_size", 128, "Training crop size in px, a multiple of 16 (the "
                     "authors' 224).", lower_bound=16)
flags.DEFINE_list("crop_sizes", None, "Mix crop sizes in one run, e.g. 64,128,192 (px, "
                  "multiples of 16; local targets, one device). Each step draws one from "
                  "(seed, step); a step of size s holds round(batch_size * (crop_size / s)^2) "
                  "crops, about the pixels of a --crop_size step. Small crops punish blobs, "
                  "large ones teach the scale of large outputs (docs/results: a model trained "
                  "on 64^2 alone is good near 64-128^2 only). Each new size compiles once.")
flags.DEFINE_integer("batch_size", 4, "Global batch size (the authors' 1).", lower_bound=1)
flags.DEFINE_float("learning_rate", 2e-4, "Adam learning rate (the authors' 2e-4).",
                   lower_bound=0.0)
flags.DEFINE_enum("lr_schedule", "linear_decay", ("constant", "linear_decay"), "constant, or "
                  "constant until --decay_start then linear to 0 at the last step (the "
                  "authors' schedule).")
flags.DEFINE_float("decay_start", 0.5, "Fraction of the steps after which the LR decays.",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_float("adam_beta1", 0.5, "Adam beta1 (the authors' 0.5).")
flags.DEFINE_float("adam_epsilon", 1e-3, "Adam epsilon (the authors' 1e-3, large on purpose).")
flags.DEFINE_integer("steps", None, "Total training steps (overrides --epochs).", lower_bound=1)
flags.DEFINE_integer("epochs", 1, "Epochs of --steps_per_epoch steps.", lower_bound=1)
flags.DEFINE_integer("steps_per_epoch", 100, "Steps per epoch.", lower_bound=1)
flags.DEFINE_enum("precision", "auto", ("float32", "mixed_bfloat16", "mixed_float16", "auto"),
                  "Mixed precision policy (losses and Grams stay float32). auto: bfloat16 on "
                  "CPUs with AVX512-BF16/AMX and Ampere+ GPUs, float16 on older GPUs.")
flags.DEFINE_integer("seed", 0, "Seed of weights init, data order and noise.",
                     lower_bound=0, upper_bound=cli.MAX_SEED)
flags.DEFINE_enum("distribution", "default", distribute.STRATEGIES,
                  "tf.distribute strategy: default (one device), mirrored (all GPUs of this "
                  "host), multi_worker (the hosts of TF_CONFIG, each running this command on "
                  "the same --model_dir, e.g. a shared file system; only the chief writes it). "
                  "--batch_size is global, split over the replicas.")
flags.DEFINE_float("cluster_timeout", 600, "multi_worker: seconds to wait for every host of "
                   "TF_CONFIG to come up before giving up with an error (0: wait for ever).",
                   lower_bound=0.0)
flags.DEFINE_float("width", None, "Channel multiplier of the trained networks: the stage "
                   "networks (default 0.25; 1.0 = the authors' 28.0M-parameter ProPO) or the "
                   "decoders (default 0.5 of VGG's widths).", lower_bound=0.01)
flags.DEFINE_integer("convs", 2, "decoders: 3x3 convolutions per decoder block.",
                     lower_bound=1)
# ot.decoders.UPSAMPLING, without importing TensorFlow (tests/test_decoders.py checks).
flags.DEFINE_enum("upsampling", "nearest", ("nearest", "bilinear"), "decoders: the ×2 "
                  "upsampling of each decoder block.")
flags.DEFINE_float("feature_weight", 1.0, "decoders: weight of the feature reconstruction "
                   "loss beside the pixel loss.", lower_bound=0.0)
flags.DEFINE_float("sliced_weight", 0.0, "po/adapo/propo: weight of a sliced Wasserstein "
                   "term per stage on the pixels and the first texture layer, beside the Gram "
                   "loss (0: the authors' objective). Keeps the networks from matching Grams "
                   "with a few dark or bright blobs.", lower_bound=0.0)
flags.DEFINE_float("logit_sliced_weight", 0.0, "po/adapo/propo: weight of a sliced "
                   "Wasserstein term per stage between the pre-sigmoid image and the target's "
                   "logits. Unlike --sliced_weight's pixel term, its gradient does not vanish "
                   "where the sigmoid saturates, which is where trained models leave black "
                   "blobs.", lower_bound=0.0)
flags.DEFINE_string("init_from", None, "Start a new run from the trained networks of this "
                    "model directory (compact or checkpoints; same model shape) with a fresh "
                    "optimizer, e.g. to fine-tune with another objective. Ignored when "
                    "--model_dir already holds a checkpoint (the run resumes).")
flags.DEFINE_enum("grad_mode", "local", ("local", "total"), "Stage inputs: local = closed-form "
                  "per-layer gradient (exports without gradient ops); total = the authors' "
                  "total derivative by autodiff (double backprop).")
flags.DEFINE_enum("po_padding", "zeros", ("zeros", "reflect", "circular"), "Padding of the "
                  "stage networks' convolutions: zeros (the authors'), reflect or circular "
                  "(with --vgg_padding=circular: no border to exploit, tileable output; see "
                  "tf_propo/po.py).")
flags.DEFINE_enum("vgg_padding", "zeros", ("zeros", "reflect", "circular"), "Padding of the "
                  "VGG encoder inside the model and its training loss: zeros (the authors') "
                  "or circular (see --po_padding). Reported metrics always use zeros.")
flags.DEFINE_string("vgg_weights", "normalized", "VGG19 weights source (normalized, imagenet, "
                    "file:PATH).")
flags.DEFINE_integer("run_steps", None, "Stop after this many steps in this invocation (the "
                     "LR schedule still spans --steps); run again to resume. For time-boxed "
                     "runs.", lower_bound=1)
flags.DEFINE_integer("checkpoint_every", 200, "Save a checkpoint every N steps (and at the "
                     "end).", lower_bound=1)
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.", lower_bound=1)
flags.DEFINE_integer("summary_every", 10, "Scalar summaries every N steps.", lower_bound=1)
flags.DEFINE_integer("image_every", 100, "Image summaries (noise, stages, target) every N "
                     "steps.", lower_bound=1)

TRAINING_FLAGS = ("mode", "stages", "layers", "targets", "holdout", "resize", "crop_size",
                  "crop_sizes", "batch_size", "learning_rate", "lr_schedule", "decay_start",
                  "adam_beta1", "adam_epsilon", "steps", "epochs", "steps_per_epoch",
                  "precision", "seed", "distribution", "width", "convs", "upsampling",
                  "feature_weight", "sliced_weight", "logit_sliced_weight", "init_from",
                  "grad_mode", "po_padding",
                  "vgg_padding", "vgg_weights",
                  "checkpoint_every", "keep_checkpoints", "summary_every", "image_every")


def total_steps():
    return FLAGS.steps or FLAGS.epochs * FLAGS.steps_per_epoch


def crop_sizes():
    """--crop_sizes as ints (empty: every step is --crop_size)."""
    sizes = []
    for text in FLAGS.crop_sizes or ():
        try:
            size = int(text)
        except ValueError:
            raise UsageError(f"--crop_sizes: {text!r} is not a whole number of px") from None
        if size < 16 or size % 16:
            raise UsageError(f"--crop_sizes: {size} is not a positive multiple of 16")
        sizes.append(size)
    return sizes


def model_config():
    data = {"vgg_weights": FLAGS.vgg_weights, "crop_size": FLAGS.crop_size,
            "resize": FLAGS.resize, "targets": FLAGS.targets, "holdout": FLAGS.holdout}
    if FLAGS.crop_sizes:
        data["crop_sizes"] = crop_sizes()
    if FLAGS.mode == "decoders":
        from tf_propo.ot import decoders

        return {"mode": "decoders", "layers": list(FLAGS.layers or decoders.DECODER_LAYERS),
                "width": FLAGS.width or 0.5, "convs": FLAGS.convs,
                "upsampling": FLAGS.upsampling,
                "feature_weight": FLAGS.feature_weight, **data}
    stages = FLAGS.stages or (5 if FLAGS.mode == "propo" else 1)
    from tf_propo import texture

    return {"mode": FLAGS.mode, "stages": stages,
            "layers": list(FLAGS.layers or texture.TEXTURE_LAYERS), "width": FLAGS.width or 0.25,
            "grad_mode": FLAGS.grad_mode, "padding": FLAGS.po_padding,
            "vgg_padding": FLAGS.vgg_padding, **data}


def flags_text():
    lines = []
    for name in TRAINING_FLAGS:
        value = FLAGS[name].value
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(value)
        lines.append(f"--{name}={value}")
    return "\n".join(lines) + "\n"


def objective_options(config):
    if config["mode"] == "decoders":
        return {}
    return {"sliced_weight": FLAGS.sliced_weight,
            "logit_sliced_weight": FLAGS.logit_sliced_weight}


def learning_rate_schedule(steps):
    from tf_propo.schedules import ConstantThenLinearDecay

    if FLAGS.lr_schedule == "constant":
        return FLAGS.learning_rate
    return ConstantThenLinearDecay(FLAGS.learning_rate, int(FLAGS.decay_start * steps), steps)


def main(argv):
    del argv
    from tf_propo import data

    if not FLAGS.model_dir:
        raise UsageError("--model_dir is required")
    if not FLAGS.targets:
        raise UsageError("--targets is required (an image, a folder, or tfds:NAME)")
    data.check_targets(FLAGS.targets, FLAGS.holdout)
    task = (distribute.cluster_task(os.environ.get("TF_CONFIG"))
            if FLAGS.distribution == "multi_worker" else None)
    cli.import_tensorflow_quietly()
    import keras
    import tensorflow as tf

    from tf_propo import model_dir, precision, vgg
    from tf_propo.progress import Progress

    config = model_config()
    sizes = config.get("crop_sizes", [])
    images_seen = functools.partial(data.images_seen, FLAGS.crop_size, FLAGS.batch_size, sizes,
                                    FLAGS.seed)
    if sizes and FLAGS.distribution != "default":
        raise UsageError("--crop_sizes trains on one device (a step's batch size varies)")
    model_dir.check_start(FLAGS.model_dir, config, FLAGS.init_from)
    for layer in config["layers"]:
        try:
            vgg.check_layer(layer)
            if config["mode"] == "decoders":
                from tf_propo.ot import decoders

                decoders.block_of(layer)
        except ValueError as e:
            raise UsageError(f"--layers: {e}") from None

    steps = total_steps()
    policy = precision.apply(FLAGS.precision)
    keras.utils.set_random_seed(FLAGS.seed)
    strategy, chief = distribute.make_strategy(FLAGS.distribution, task, FLAGS.cluster_timeout)
    replicas = strategy.num_replicas_in_sync
    if FLAGS.batch_size % replicas:
        raise UsageError(f"--batch_size={FLAGS.batch_size} must be a multiple of the "
                         f"{replicas} replicas")

    with strategy.scope():
        model = model_dir.build_model(config)
        optimizer = keras.optimizers.Adam(learning_rate_schedule(steps),
                                          beta_1=FLAGS.adam_beta1, epsilon=FLAGS.adam_epsilon)
        if policy == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        variables = [v for net in model.networks.values() for v in net.trainable_variables]
        optimizer.build(variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    ckpt = model_dir.checkpoint(model, optimizer=optimizer, step=step)
    latest = tf.train.latest_checkpoint(FLAGS.model_dir)  # the chief's, on every worker
    if latest:
        try:
            ckpt.restore(latest).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError) as e:
            raise UsageError(f"{latest}: cannot resume ({str(e).splitlines()[0]})") from None
    elif FLAGS.init_from:
        print(f"starting from {model_dir.restore(FLAGS.init_from, model)}", file=sys.stderr)
    start_step = int(step.numpy())
    if sizes:
        dataset = data.mixed_crop_dataset(FLAGS.targets, FLAGS.crop_size, FLAGS.batch_size,
                                          sizes, seed=FLAGS.seed, resize=FLAGS.resize,
                                          start_step=start_step, holdout=FLAGS.holdout)
    else:
        dataset = data.texture_dataset(FLAGS.targets, FLAGS.crop_size, FLAGS.batch_size,
                                       seed=FLAGS.seed, resize=FLAGS.resize,
                                       start=start_step * FLAGS.batch_size,
                                       holdout=FLAGS.holdout)
    held_out = data.held_out_names(FLAGS.targets, FLAGS.holdout)
    if held_out is not None:
        config["held_out"] = held_out
    if chief:  # written only once the data is known good: a bad run leaves no model_dir
        model_dir.hold(FLAGS.model_dir)
        model_dir.save_config(FLAGS.model_dir, config, flags_text())
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    objective = (DecoderObjective if config["mode"] == "decoders"
                 else PseudoOptimizerObjective)(model, **objective_options(config))

    def replica_step(batch):
        prepared = objective.prepare(batch)  # outside the tape: no variable depends on it
        with tf.GradientTape() as tape:
            loss, scalars = objective.loss(batch, prepared)
            scaled = optimizer.scale_loss(loss / replicas)
        grads = tape.gradient(scaled, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return scalars

    @tf.function
    def train_step(batch):
        scalars = strategy.run(replica_step, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in scalars.items()}

    def preview(batch):
        local = strategy.experimental_local_results(batch)[0]
        return objective.preview({k: v[:1] for k, v in local.items()})

    writer = (tf.summary.create_file_writer(os.path.join(FLAGS.model_dir, "train")) if chief
              else tf.summary.create_noop_writer())
    if start_step >= steps:
        print(json.dumps({"model_dir": os.path.abspath(FLAGS.model_dir), "step": start_step,
                          "images": images_seen(start_step),
                          "note": "already trained to --steps"}))
        return
    if start_step:
        print(f"resuming {FLAGS.model_dir} at step {start_step}/{steps}", file=sys.stderr)
    stop = min(steps, start_step + FLAGS.run_steps) if FLAGS.run_steps else steps
    progress = Progress(stop - start_step, f"train {config['mode']} {policy}")
    window_start, window_images = time.perf_counter(), 0
    scalars = {}
    # Throughput counts the train steps (data included) after this run's first, which traces
    # the graph; checkpoints, summaries and previews are left out, so precisions and
    # configurations compare on the training computation itself.
    train_seconds, timed_steps, timed_images = 0.0, -1, 0
    with distribute.checkpoint_directory(FLAGS.model_dir, chief) as save_dir:
        manager = tf.train.CheckpointManager(ckpt, save_dir,
                                             max_to_keep=FLAGS.keep_checkpoints)
        while int(step.numpy()) < stop:
            tick = time.perf_counter()
            _, count = data.step_crop(FLAGS.crop_size, FLAGS.batch_size, sizes, FLAGS.seed,
                                      int(step.numpy()))
            batch = next(iterator)
            scalars = {k: float(v) for k, v in train_step(batch).items()}
            timed_steps += 1
            if timed_steps:
                train_seconds += time.perf_counter() - tick
                timed_images += count
            step.assign_add(1)
            current = int(step.numpy())
            window_images += count
            progress.update(loss=scalars["loss/total"])
            if current % FLAGS.summary_every == 0 or current == steps:
                elapsed = time.perf_counter() - window_start
                with writer.as_default(step=current):
                    for name, value in scalars.items():
                        tf.summary.scalar(name, value)
                    tf.summary.scalar("learning_rate",
                                      float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
                    tf.summary.scalar("images_per_second", window_images / max(elapsed, 1e-9))
                window_start, window_images = time.perf_counter(), 0
            if chief and (current % FLAGS.image_every == 0 or current == steps):
                with writer.as_default(step=current):
                    tf.summary.image(objective.PREVIEW, preview(batch), max_outputs=1)
            if current % FLAGS.checkpoint_every == 0 or current == stop:
                manager.save(checkpoint_number=current)
    writer.flush()
    print(json.dumps({"model_dir": os.path.abspath(FLAGS.model_dir), "step": int(step.numpy()),
                      "images": images_seen(int(step.numpy())), **objective.summary(scalars),
                      "train_seconds": round(train_seconds, 2),
                      "images_per_second": round(timed_images / max(train_seconds, 1e-9), 3),
                      # Crops per timed step: --batch_size, or its mean over mixed crop sizes.
                      "batch_size": round(timed_images / timed_steps, 2)
                      if sizes and timed_steps > 0 else FLAGS.batch_size, "precision": policy,
                      "replicas": replicas}))


class PseudoOptimizerObjective:
    """po / adapo / propo: the sum over stages of each stage's texture loss, plus sliced
    Wasserstein terms per stage (texture.sliced_wasserstein: a Gram matrix can be matched by a
    few extreme blobs, a distribution cannot): with `sliced_weight` on the pixels and on the
    first texture layer, with `logit_sliced_weight` on the pre-sigmoid image against the
    target's logits, whose gradient does not vanish where the sigmoid saturates (the pixel
    term's does, so it cannot move a blob that is already black). In keras.ops: train_jax
    uses it too."""

    PREVIEW = "noise_stages_target"
    SLICED_DIRECTIONS = 32

    def __init__(self, model, sliced_weight=0.0, logit_sliced_weight=0.0):
        from tf_propo import texture, vgg

        self.model = model
        self.sliced_layer = model.layer_sets[0][0]  # the shallowest: cheap, in every pass
        self.weights = {"pixels": float(sliced_weight), "features": float(sliced_weight),
                        "logits": float(logit_sliced_weight)}
        channels = {"pixels": 3, "features": vgg.channels(self.sliced_layer), "logits": 3}
        self.directions = {k: texture.sliced_directions(channels[k], self.SLICED_DIRECTIONS)
                           for k, weight in self.weights.items() if weight}

    def _sliced_inputs(self, image, pre):
        """The distributions the weighted sliced terms compare, by name."""
        inputs = {}
        if "pixels" in self.directions:
            inputs["pixels"] = image
            inputs["features"] = self.model.features(
                image, self.model.layer_sets[0])[self.sliced_layer]
        if "logits" in self.directions:
            inputs["logits"] = pre
        return inputs

    def prepare(self, batch):
        """The target's Grams (and sorted projections, for the sliced terms)."""
        from tf_propo import po, texture

        layers = self.model.all_layers
        prepared = {"grams": texture.gram_matrices(
            self.model.features(batch["target"], layers), layers)}
        if self.directions:
            target = batch["target"]
            prepared["sorted"] = {
                k: texture.sorted_projections(v, self.directions[k])
                for k, v in self._sliced_inputs(target, po.image_logits(target)).items()}
        return prepared

    def _forward(self, batch, prepared, training):
        return self.model({"pre": batch["pre"], "target_grams": prepared["grams"]},
                          training=training)

    def loss(self, batch, prepared):
        from keras import ops

        from tf_propo import texture

        out = self._forward(batch, prepared, training=True)
        stage_losses = [ops.mean(loss) for loss in out["losses"]]
        total = sum(stage_losses)
        scalars = {}
        scalars.update({f"loss/stage{s}": v for s, v in enumerate(stage_losses)})
        scalars.update({f"layer_loss/stage{s}/{k}": ops.mean(v)
                        for s, per in enumerate(out["layer_losses"]) for k, v in per.items()})
        for s, (image, pre) in enumerate(zip(out["images"][1:], out["pre"][1:])):
            for k, v in self._sliced_inputs(image, pre).items():
                distance = ops.mean(texture.sliced_wasserstein(
                    v, prepared["sorted"][k], self.directions[k]))
                scalars[f"sliced/stage{s}/{k}"] = distance
                total = total + self.weights[k] * distance
        scalars["loss/total"] = total
        return total, scalars

    def preview(self, batch):
        """noise x[0] | x[1] .. x[K] | target, one row."""
        from keras import ops

        out = self._forward(batch, self.prepare(batch), training=False)
        return ops.concatenate(out["images"] + [batch["target"]], axis=2)

    def summary(self, scalars):
        stages = len(self.model.stages)
        return {"stage_losses": [scalars.get(f"loss/stage{s}") for s in range(stages)]}


class DecoderObjective:
    """decoders: pixel + feature reconstruction, summed over the layers' decoders."""

    PREVIEW = "image_decoded_per_layer"

    def __init__(self, model):
        self.model = model

    def prepare(self, batch):
        return None

    def loss(self, batch, prepared):
        import tensorflow as tf

        out = self.model(batch["target"], training=True)
        scalars = {}
        for layer, (pixel, feature) in out["losses"].items():
            scalars[f"pixel_loss/{layer}"] = tf.reduce_mean(pixel)
            scalars[f"feature_loss/{layer}"] = tf.reduce_mean(feature)
        total = tf.add_n(list(scalars.values()))
        scalars["loss/total"] = total
        return total, scalars

    def preview(self, batch):
        """image | its reconstruction from each layer, shallow to deep."""
        import tensorflow as tf

        out = self.model(batch["target"], training=False)
        decoded = [tf.clip_by_value(out["decoded"][l], 0.0, 1.0)
                   for l in self.model.layers_decoded]
        return tf.concat([batch["target"]] + decoded, axis=2)

    def summary(self, scalars):
        return {"losses": {k: v for k, v in scalars.items() if k != "loss/total"}}


if __name__ == "__main__":
    cli.run(main, tensorflow=False)  # imported once --targets is found
