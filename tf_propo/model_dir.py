"""A trained model's directory: everything needed to rebuild the exact model from it alone.

    model_dir/config.json   the model's configuration (mode, stages, layers, width, ...)
    model_dir/flags.txt     the training run's flags, as a flagfile (re-run or resume with it)
    model_dir/ckpt-N.*      tf.train.CheckpointManager checkpoints: the stage networks, the
                            optimizer and the step counter (not VGG: it is fetched by name)
    model_dir/train/        TensorBoard summaries

A compact model directory (write_compact; what the package bundles) holds config.json and
weights.npz instead of checkpoints: the trained networks' weights in float16, their sha256 in
config.json ("weights_sha256"), checked on every load. write_compact makes it a float16 model
throughout: its config.json also says "vgg_float16_values", so the VGG encoder inside it
computes with its weights rounded to float16 too (a directory without the key, such as the
bundled OT decoders written before it existed, keeps a float32 encoder and its documented
numbers). A float16 TFLite export of it then computes exactly what Keras
does (a pseudo optimizer is chaotic where it draws a dark blob: rounding VGG's weights alone
moves ~5% of its image, at the same texture loss; benchmarks/export_parity.py).
"""

import hashlib
import json
import os
import zipfile

from tf_propo import po
from tf_propo import weights
from tf_propo.errors import UsageError
from tf_propo.files import atomic_write

CONFIG = "config.json"
COMPACT_WEIGHTS = "weights.npz"
FLAGS_FILE = "flags.txt"
PSEUDO_OPTIMIZER_MODES = ("po", "adapo", "propo")
MODES = PSEUDO_OPTIMIZER_MODES + ("decoders",)
# Keys that fix the model's shape: a resumed run must agree with them.
MODEL_KEYS = {"po": ("mode", "stages", "layers", "width", "grad_mode", "vgg_weights"),
              "decoders": ("mode", "layers", "width", "convs", "vgg_weights")}
# Later additions, with the value a config written before them means.
DEFAULTS = {"po": {"padding": "zeros", "vgg_padding": "zeros"},
            "decoders": {"upsampling": "nearest"}}
# Keys that change what a model computes but not its weights' shapes: a fine-tune may set
# them anew (e.g. nearest-upsampling decoders fine-tuned with bilinear upsampling).
FINE_TUNE_MAY_CHANGE = ("padding", "vgg_padding", "upsampling")
FLOAT16_ENCODER = "vgg_float16_values"  # config key: the encoder's weights rounded to float16


def _kind(mode):
    """"po" for the pseudo optimizers (one model class), "decoders" for the OT decoders."""
    return "decoders" if mode == "decoders" else "po"


def _atomic_write_text(path, text):
    atomic_write(path, lambda f: f.write(text.encode()))


LOCK = ".lock"
_HELD = []  # open lock files: a lock lasts as long as the process


def hold(model_dir):
    """Create `model_dir` if needed and lock it for this process (an advisory lock on its
    .lock file, released when the process ends, however it ends): a second training run
    into the same directory is refused instead of silently writing beside the first."""
    import fcntl

    os.makedirs(model_dir, exist_ok=True)
    lock = open(os.path.join(model_dir, LOCK), "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        owner = lock.read().strip() or "another process"
        lock.close()
        raise UsageError(f"--model_dir={model_dir} is in use by another training run "
                         f"({owner}); wait for it or choose another directory") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()}\n")
    lock.flush()
    _HELD.append(lock)


def save_config(model_dir, config, flags_text=None):
    _atomic_write_text(os.path.join(model_dir, CONFIG), json.dumps(config, indent=1) + "\n")
    if flags_text is not None:
        _atomic_write_text(os.path.join(model_dir, FLAGS_FILE), flags_text)


def load_config(model_dir, flag="--model_dir"):
    """The checked configuration of `model_dir`; errors name it as `flag` gave it."""
    path = os.path.join(model_dir, CONFIG)
    if not os.path.isdir(model_dir):
        raise UsageError(f"{flag}={model_dir}: no such directory")
    if not os.path.exists(path):
        raise UsageError(f"{flag}={model_dir}: no {CONFIG}; not a tf_propo model "
                         "directory (train one with python -m tf_propo.train)")
    try:
        with open(path) as f:
            config = json.load(f)
        if not isinstance(config, dict):
            raise ValueError(f"a JSON object is expected, not {type(config).__name__}")
        if config.get("mode") not in MODES:
            raise ValueError(f"unknown mode {config.get('mode')!r}")
        kind = _kind(config["mode"])
        missing = [k for k in MODEL_KEYS[kind] if k not in config]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        config = {**DEFAULTS[kind], **config}
        _check_values(config)
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: corrupt model configuration ({e})") from None
    return config


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_values(config):
    """The model keys' types and ranges, so a hand-edited config fails here, not deep in
    the model's construction."""
    from tf_propo import vgg

    layers = config["layers"]
    if not (isinstance(layers, list) and layers and all(
            isinstance(layer, str) and layer in vgg.LAYER_ORDER for layer in layers)):
        raise ValueError(f"layers must be a list of VGG19 layer names, not {layers!r}")
    width = config["width"]
    if not (isinstance(width, (int, float)) and not isinstance(width, bool) and width > 0):
        raise ValueError(f"width must be a positive number, not {width!r}")
    key = "convs" if config["mode"] == "decoders" else "stages"
    if not _positive_int(config[key]):
        raise ValueError(f"{key} must be a positive integer, not {config[key]!r}")
    if config["mode"] == "decoders":
        from tf_propo.ot.decoders import UPSAMPLING

        if config["upsampling"] not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {', '.join(UPSAMPLING)}, not "
                             f"{config['upsampling']!r}")


def check_compatible(saved, wanted, model_dir, flag="--model_dir"):
    """A resumed run (or a fine-tune, flag="--init_from") must train the same model."""
    kind = _kind(wanted["mode"])
    defaults = DEFAULTS[kind]
    for key in MODEL_KEYS[kind] + tuple(defaults):
        if flag == "--init_from" and key in FINE_TUNE_MAY_CHANGE:
            continue
        a, b = saved.get(key, defaults.get(key)), wanted.get(key, defaults.get(key))
        if isinstance(a, list):
            a = tuple(a)
        if isinstance(b, list):
            b = tuple(b)
        if a != b:
            raise UsageError(f"{flag}={model_dir} holds a model with {key}={a}, but this "
                             f"run asks for {key}={b}; use another {flag}")


def check_start(model_dir, config, init_from=None):
    """Before any work: a run resuming in `model_dir` must train the model it started with,
    and a new fine-tune's `init_from` (a model directory) must hold that model. A fine-tune's
    origin goes on record in `config`."""
    if os.path.exists(os.path.join(model_dir, CONFIG)):
        saved = load_config(model_dir)
        check_compatible(saved, config, model_dir)
        if "init_from" in saved:
            config["init_from"] = saved["init_from"]
    if init_from and "init_from" not in config:
        check_compatible(load_config(init_from, "--init_from"), config, init_from,
                         flag="--init_from")
        config["init_from"] = os.path.abspath(init_from)


def build_model(config):
    """The model `config` describes, with the pretrained VGG encoder: a ProgressiveOptimizer
    (po/adapo/propo) or an OT DecoderFamily (decoders)."""
    config = {**DEFAULTS[_kind(config["mode"])], **config}
    layers = tuple(config["layers"])
    if config["mode"] == "decoders":
        from tf_propo.ot import decoders

        encoder = weights.pretrained_encoder(layers, source=config["vgg_weights"],
                                             float16_values=config.get(FLOAT16_ENCODER, False),
                                             pooling=decoders.ENCODER_POOLING)
        return decoders.DecoderFamily(encoder, layers, width=config["width"],
                                      convs=config["convs"],
                                      upsampling=config["upsampling"],
                                      feature_weight=config.get("feature_weight", 1.0))
    encoder = weights.pretrained_encoder(layers, source=config["vgg_weights"],
                                         float16_values=config.get(FLOAT16_ENCODER, False),
                                         padding=config["vgg_padding"])
    return po.ProgressiveOptimizer(encoder, stages=config["stages"], layers=layers,
                                   width=config["width"], grad_mode=config["grad_mode"],
                                   padding=config["padding"])


def checkpoint(model, **extra):
    """The trackable state of a model: its trained networks (plus optimizer/step in
    training), under "stages" for pseudo optimizers and "decoders" for the OT decoders."""
    import tensorflow as tf  # only here and in restore: train_jax writes compact dirs

    group = "stages" if isinstance(model, po.ProgressiveOptimizer) else "decoders"
    return tf.train.Checkpoint(**{group: model.networks}, **extra)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_compact(path, model, config):
    """A compact model directory at `path`: config.json + float16 weights.npz, a float16
    model (its encoder too: FLOAT16_ENCODER)."""
    import io

    import numpy as np

    arrays = {f"{name}/{i}": np.asarray(w, np.float16)
              for name, net in model.networks.items()
              for i, w in enumerate(net.get_weights())}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    weights_path = os.path.join(path, COMPACT_WEIGHTS)
    atomic_write(weights_path, lambda f: f.write(buffer.getvalue()))
    config = {k: v for k, v in config.items() if k != "weights_sha256"}
    save_config(path, {**config, FLOAT16_ENCODER: True,
                       "weights_sha256": _sha256(weights_path)})
    return weights_path


def _restore_compact(model_dir, model, config):
    import numpy as np

    path = os.path.join(model_dir, COMPACT_WEIGHTS)
    if _sha256(path) != config.get("weights_sha256"):
        raise UsageError(f"{path}: corrupt weights (sha256 differs from {CONFIG})")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            for name, net in model.networks.items():
                wanted = net.get_weights()
                values = [arrays[f"{name}/{i}"].astype(np.float32) for i in range(len(wanted))]
                if [v.shape for v in values] != [w.shape for w in wanted]:
                    raise ValueError(f"{name}: shapes differ from the configured model")
                net.set_weights(values)
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise UsageError(f"{path}: cannot restore ({str(e).splitlines()[0]})") from None
    return path


def has_checkpoints(model_dir):
    """Whether `model_dir` holds tf.train checkpoints (the index file CheckpointManager
    writes), as opposed to a compact model directory."""
    return os.path.exists(os.path.join(model_dir, "checkpoint"))


def restore(model_dir, model):
    """Restore the trained weights into `model` from the latest checkpoint or, in a compact
    model directory, from weights.npz; returns the path used."""
    if not has_checkpoints(model_dir) and os.path.exists(os.path.join(model_dir, COMPACT_WEIGHTS)):
        return _restore_compact(model_dir, model, load_config(model_dir))  # without TF
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(model_dir)
    if latest is None:
        raise UsageError(f"--model_dir={model_dir}: no checkpoint yet (is training still at "
                         "its first steps?)")
    try:
        checkpoint(model).read(latest).assert_existing_objects_matched().expect_partial()
    except (tf.errors.OpError, AssertionError, ValueError) as e:
        raise UsageError(f"{latest}: cannot restore ({str(e).splitlines()[0]})") from None
    return latest


def verified_bundle(path, expected_sha256, what):
    """`path`, a compact model directory shipped with the package, after checking that its
    config.json names the pinned weights (weights.npz is checked against config.json on
    load); a clear error if it is missing or was modified."""
    config = os.path.join(path, CONFIG)
    if not os.path.exists(config):
        raise UsageError(f"this installation has no bundled {what} ({path} is missing)")
    try:
        with open(config) as f:
            digest = json.load(f).get("weights_sha256")
    except (OSError, ValueError):
        digest = None
    if digest != expected_sha256:
        raise UsageError(f"{config}: the bundled {what} were modified (weights sha256 "
                         f"{digest}, expected {expected_sha256})")
    return path
