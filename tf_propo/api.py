"""The Python API: texture synthesis by preset or trained model, in the shape of keras-hub.

    import tf_propo

    synth = tf_propo.TextureSynthesizer.from_preset("quilt")
    images = synth.generate("wall.jpg", size=(512, 1024), samples=2, seed=1, tileable=True)
    tf_propo.texture_loss(images, "wall.jpg")

The command-line apps (synthesize, evaluate) run the same methods (tf_propo.methods).
"""

import dataclasses
import os

import numpy as np

from tf_propo import shapes

# name: (method, options, description). Sizes on disk are what the preset loads.
_PRESETS = {
    "quilt": ("quilt", {}, "Image quilting from blocks of the target, polished by 4 shallow "
              "VGG steps: no training, about a second for 256² on a CPU, the target's "
              "structure, any size, tileable."),
    "quilt_raw": ("quilt", {"polish_steps": 0}, "Image quilting alone: no VGG weights to "
                  "fetch, a quarter of a second for 256²; its fine grain less like the "
                  "target's."),
    "quilt_refined": ("quilt", {"refine_steps": 24}, "Quilting, then 24 L-BFGS steps of "
                      "Gatys' loss: the target's statistics matched closely in a few "
                      "seconds."),
    "propo": ("propo", {}, "The bundled pretrained progressive pseudo optimizer (Shi & Qiao "
              "2020): one network pass, sides in multiples of 16."),
    "gatys": ("gatys", {"steps": 100}, "Gatys et al.'s optimisation from noise, 100 L-BFGS "
              "steps: the quality reference, about a minute for 256² on a CPU."),
    "ot": ("ot", {}, "Optimal transport of VGG features (Risser 2020) with his binned CDF "
           "matching and the bundled decoders, polished by 6 shallow VGG steps: no "
           "training, about two seconds for 256² on a CPU."),
    "ot_sliced": ("ot", {"strategy": "sliced"}, "Optimal transport as `ot`, each slice "
                  "matched exactly by sorting, polished by 6 shallow VGG steps: a little "
                  "slower."),
    "ot_eigh": ("ot", {"strategy": "eigh"}, "Optimal transport by mean and covariance "
                "(eigendecomposition), the bundled decoders, polished by 6 shallow VGG "
                "steps."),
}


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    method: str
    megabytes: float
    description: str


def list_presets():
    """The presets TextureSynthesizer.from_preset takes.

    Returns:
        A list of Preset (name, method, megabytes on disk it loads, description).

    Example:
        >>> [p.name for p in list_presets()][:3]
        ['quilt', 'quilt_raw', 'quilt_refined']
    """
    return [Preset(name, method, _preset_megabytes(method), description)
            for name, (method, _, description) in _PRESETS.items()]


def _preset_megabytes(method):
    from tf_propo import methods

    if method == "propo":
        folder = methods.bundled_propo()
    elif method == "ot":
        from tf_propo.ot import synthesis

        folder = synthesis.bundled_decoders()
    else:
        return 0.0
    return round(sum(os.path.getsize(os.path.join(folder, f))
                     for f in os.listdir(folder)) / 1e6, 1)


def as_image(target, name="target"):
    """float32 RGB [H, W, 3] in [0, 1] from a path, a uint8 or float array, or a tf.Tensor;
    ValueError naming `name` otherwise."""
    if isinstance(target, (str, os.PathLike)):
        from tf_propo import image_io

        return image_io.read_image(target)
    if hasattr(target, "numpy"):
        target = target.numpy()
    array = np.asarray(target)
    if array.ndim != 3 or array.shape[-1] != 3 or min(array.shape[:2]) < 16:
        raise ValueError(f"{name} must be an image [H, W, 3] with sides of at least 16 px, "
                         f"got shape {array.shape}")
    if array.dtype == np.uint8:
        from tf_propo import image_io

        return image_io.from_uint8(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must be uint8 or float in [0, 1], got {array.dtype}")
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
        raise ValueError(f"{name}: float pixels must be finite and in [0, 1]")
    return array.astype(np.float32)


def _size(size):
    height, width = (size, size) if np.isscalar(size) else tuple(size)
    if not all(isinstance(v, (int, np.integer)) and 16 <= v <= 8192 for v in (height, width)):
        raise ValueError(f"size must be an int or (height, width) of 16 to 8192 px, got "
                         f"{size!r}")
    return int(height), int(width)


class TextureSynthesizer:
    """One synthesis method with its loaded model, reusable over many targets.

    Build it with from_preset (list_presets) or load (a trained model directory); generate
    makes textures from a target.
    """

    def __init__(self, method, model=None, target_size=256, policy="float32", model_dir=None,
                 **options):
        """A synthesizer of `method` (tf_propo.shapes.METHODS) with its loaded `model` (the
        pseudo optimizer or OT decoders; None for quilt and gatys); from_preset and load
        build one for you.

        Args:
            target_size: the target's short edge in px before its statistics (0: as is).
            policy: the Keras dtype policy the model was built under, and of the VGG passes.
            model_dir: the directory the model was loaded from (what export writes).
            options: strategy (ot), steps, optimizer and learning_rate (gatys), polish_steps
                (quilt, ot), graph (quilt: the exported model's quilting,
                tf_propo.graph_quilting), refine_steps (L-BFGS steps after the method),
                vgg_weights.
        """
        self.method = method
        self.model = model
        self.target_size = target_size
        self.policy = policy  # the networks' and the VGG passes' Keras dtype policy
        self.model_dir = model_dir
        self.options = options

    @classmethod
    def from_preset(cls, name, target_size=256, precision="auto"):
        """A synthesizer from a preset name (list_presets), bundled models sha256-checked.

        Args:
            name: a preset name, e.g. "quilt" (the fast default) or "quilt_refined".
            target_size: the target's short edge is resized to this before synthesis
                (the paper's 256); 0 keeps it as it is.
            precision: "auto" (bfloat16 where the CPU or GPU has it), "float32",
                "mixed_bfloat16" or "mixed_float16": the networks' and VGG's arithmetic
                (Gatys runs in float32 whatever it says).

        Returns:
            A TextureSynthesizer.

        Example:
            >>> TextureSynthesizer.from_preset("quilt").method
            'quilt'
        """
        if name not in _PRESETS:
            raise ValueError(f"name must be one of {', '.join(_PRESETS)}, got {name!r}")
        method, options, _ = _PRESETS[name]
        from tf_propo import methods, precision as precisions

        policy = _policy(precision)
        model, model_dir = None, None
        with precisions.building_under(policy):
            if method == "propo":
                model, model_dir = methods.load_pseudo_optimizer(None, "propo")
            elif method == "ot":
                model = methods.load_optimal_transport()
        return cls(method, model, target_size, policy, model_dir, **options)

    @classmethod
    def load(cls, model_dir, target_size=256, precision="auto"):
        """A synthesizer from a trained po / adapo / propo model directory
        (python -m tf_propo.train) or a decoders directory (OT, its default strategy);
        target_size and precision as for from_preset."""
        from tf_propo import methods, precision as precisions
        from tf_propo import model_dir as model_dirs

        mode = model_dirs.load_config(model_dir)["mode"]
        policy = _policy(precision)
        with precisions.building_under(policy):
            if mode == "decoders":
                return cls("ot", methods.load_optimal_transport(model_dir), target_size,
                           policy, model_dir)
            model, _ = methods.load_pseudo_optimizer(model_dir, mode)
        return cls(mode, model, target_size, policy, model_dir)

    def export(self, out, format="saved_model", size=256, quantize="none", verify=True):
        """Write this synthesizer for serving or devices, checked on a bundled sample
        against the same synthesis in Python: a quilt preset as one float32 graph (the
        quilt, its colour match and its polish steps; refine_steps are not exported), a
        pseudo optimizer rebuilt in float32 from its directory.

        Args:
            out: a new directory (format "saved_model": TF Serving, output size chosen per
                request) or a .tflite file (format "tflite": LiteRT, a static size² output
                from a target_size² target).
            size: tflite: the output side in px (a multiple of 16).
            quantize: tflite, a pseudo optimizer: "none", "fp16", "int8", "dynamic",
                "int8_weights" or "int8_mixed" (docs/export.md compares them).
            verify: run what was written once and report its parity.

        Returns:
            dict: format, out, bytes, seconds, parity ({image_relative_error,
            texture_loss_ratio}) and the mode exported ("quilt" or the model's).

        Example (quilting and the pseudo optimizers export; the others say so):
            >>> TextureSynthesizer.from_preset("gatys").export("gatys.tflite", "tflite")
            Traceback (most recent call last):
            ...
            ValueError: only quilting and a pseudo optimizer loaded from a directory export ...
        """
        from tf_propo import precision as precisions
        from tf_propo.export import write

        if self.method != "quilt" and (self.method not in shapes.PSEUDO_OPTIMIZERS
                                       or not self.model_dir):
            raise ValueError(f"only quilting and a pseudo optimizer loaded from a directory "
                             f"export ({', '.join(shapes.PSEUDO_OPTIMIZERS)}); this one is "
                             f"{self.method}")
        if format not in ("saved_model", "tflite"):
            raise ValueError(f"format must be 'saved_model' or 'tflite', got {format!r}")
        quilt = self.method == "quilt"  # exported from no model directory
        with precisions.building_under("float32"):
            return write.export_model(
                None if quilt else self.model_dir, out, format, size, self.target_size or 256,
                quantize, verify=verify,
                polish_steps=self.options.get("polish_steps") if quilt else None)

    def statistics(self, target):
        """`target` prepared for generate: its pixels at this synthesizer's target_size, and
        what the method computes from them (Gram matrices, OT features), computed on the
        first generate and kept, so later calls skip the target's passes.

        Args:
            target: as generate takes it.

        Returns:
            A TargetStatistics, which generate takes in place of the target.

        Example:
            >>> synth = TextureSynthesizer.from_preset("quilt")
            >>> stats = synth.statistics(np.full((64, 64, 3), 0.5))
            >>> synth.generate(stats, size=32, seed=1).shape
            (1, 32, 32, 3)
        """
        from tf_propo import image_io, methods

        image = as_image(target)
        if self.target_size:
            image = image_io.resize_short_edge(image, self.target_size)
        return methods.TargetStatistics(image)

    def generate(self, target, size=256, samples=1, seed=0, tileable=False):
        """Textures like `target`.

        Args:
            target: a path, a uint8 or float [0, 1] array [H, W, 3], a tf.Tensor, or the
                TargetStatistics of statistics(target) (reused: its passes are not redone).
            size: output side in px, or (height, width); the pseudo optimizers take
                sides in multiples of 16.
            samples: how many textures (each from its own noise).
            seed: the same seed gives the same textures.
            tileable: textures that wrap around without a seam (every method; ot in
                multiples of 16).

        Returns:
            uint8 numpy array [samples, height, width, 3].

        Raises:
            ValueError: a bad size, samples or seed. tf_propo.UsageError: a target that
                cannot be read, or images that would need more memory than is free
                (docs/synthesis.md: about 0.8 KB per pixel for quilt, 3 KB for ot).

        Example:
            >>> synth = TextureSynthesizer.from_preset("quilt")
            >>> synth.generate(np.full((64, 64, 3), 0.5), size=(32, 48), samples=2).shape
            (2, 32, 48, 3)
        """
        from tf_propo import image_io

        return image_io.to_uint8(self.synthesize(target, size, samples, seed,
                                                 tileable).images)

    def synthesize(self, target, size=256, samples=1, seed=0, tileable=False, progress=False):
        """generate's textures with what a report needs (the synthesize command's JSON).

        Args:
            target, size, samples, seed, tileable: as for generate.
            progress: progress bars on stderr for long work: gatys' steps, and the polish
                and refinement steps of outputs from a megapixel.

        Returns:
            A Synthesis: images float32 [samples, height, width, 3] in [0, 1], seconds of
            the synthesis itself (models loaded and graphs traced before: a first call at a
            shape traces outside them), extra (the method's own figures; the pseudo
            optimizers' every stage in extra["stage_images"]; with refine_steps,
            extra["refine"] = {steps, seconds, images_before}).

        Example:
            >>> result = TextureSynthesizer.from_preset("quilt_raw").synthesize(
            ...     np.full((64, 64, 3), 0.5), size=32)
            >>> result.images.dtype, result.images.shape, result.seconds > 0
            (dtype('float32'), (1, 32, 32, 3), True)
        """
        height, width = _size(size)
        if not (isinstance(samples, (int, np.integer)) and 1 <= samples <= 256):
            raise ValueError(f"samples must be an int from 1 to 256, got {samples!r}")
        if not (isinstance(seed, (int, np.integer)) and 0 <= seed < 2**31):
            raise ValueError(f"seed must be an int in [0, 2^31), got {seed!r}")
        problem = shapes.size_problem(self.method, height, width, bool(tileable))
        if problem:
            raise ValueError(f"size {(height, width)}: {problem}")
        from tf_propo import memory, methods

        memory.check_fits(samples * height * width, f"size {(height, width)} with "
                          f"samples={samples}", "ask for fewer samples or a smaller size",
                          self.method)

        if not isinstance(target, methods.TargetStatistics):
            target = self.statistics(target)
        images, seconds, extra = self._run(target, height, width, samples, seed,
                                           bool(tileable), progress)
        refine = self.options.get("refine_steps", 0)
        if refine and self.method != "gatys":
            before = images
            images, refine_seconds, _ = methods.refine(
                target, images, refine, policy=self.policy, tileable=tileable,
                vgg_weights=self.options.get("vgg_weights", "normalized"),
                trust=methods.QUILT_TRUST if self.method == "quilt" else None,
                progress="refine" if progress else None)
            seconds += refine_seconds
            extra["refine"] = {"steps": refine, "seconds": round(refine_seconds, 3),
                               "images_before": before}
        return Synthesis(np.asarray(images, np.float32), seconds, extra)

    def _run(self, target, height, width, samples, seed, tileable, progress):
        """(images, seconds, extra) of the method itself."""
        from tf_propo import methods, metrics

        options, policy = self.options, self.policy
        vgg_weights = options.get("vgg_weights", "normalized")
        polish_steps = options.get("polish_steps", methods.default_polish_steps(self.method))
        if self.method == "quilt":
            return methods.quilt(target, (height, width), samples, seed, tileable=tileable,
                                 polish_steps=polish_steps, policy=policy,
                                 vgg_weights=vgg_weights, graph=options.get("graph", False),
                                 progress=progress)
        noise = metrics.reference_noise(seed, (height, width), samples)
        if self.method == "ot":
            from tf_propo.ot import DEFAULT_STRATEGY

            strategy = options.get("strategy") or DEFAULT_STRATEGY
            return methods.optimal_transport(self.model, target, noise, seed, strategy,
                                             polish_steps, policy, vgg_weights, tileable,
                                             progress)
        if self.method == "gatys":
            return methods.gatys(target, noise, options.get("steps", 100),
                                 options.get("optimizer", "lbfgs"),
                                 options.get("learning_rate", 0.02), progress=progress,
                                 tileable=tileable, vgg_weights=vgg_weights)
        return methods.pseudo_optimizer(self.model, target, (height, width), samples, seed,
                                        tileable=tileable)


@dataclasses.dataclass(frozen=True)
class Synthesis:
    """What TextureSynthesizer.synthesize made.

    Attributes:
        images: float32 [samples, height, width, 3] in [0, 1].
        seconds: the synthesis itself, refinement included (loading and tracing excluded).
        extra: the method's own figures, as the synthesize command's JSON line carries them.
    """

    images: np.ndarray
    seconds: float
    extra: dict


def _policy(precision):
    from tf_propo import precision as precisions
    from tf_propo.errors import UsageError

    try:
        return precisions.resolve(precision)
    except UsageError:
        raise ValueError(f"precision must be one of {', '.join(precisions.PRECISIONS)}, "
                         f"got {precision!r}") from None


def texture_loss(images, target, target_size=256):
    """The authors' texture loss (Gatys' Gram loss on the paper's VGG19 layers) of each
    image against the target: the paper's quality figure, lower is better.

    Args:
        images: one image [H, W, 3] or a batch [N, H, W, 3] (uint8, or float in [0, 1]).
        target: as TextureSynthesizer.generate takes it.
        target_size: the target's short edge is resized to this first, as generate does
            (0 keeps it).

    Returns:
        float64 numpy array [N].
    """
    from tf_propo import metrics

    batch = np.asarray(images.numpy() if hasattr(images, "numpy") else images)
    batch = batch[None] if batch.ndim == 3 else batch
    if batch.ndim != 4:
        raise ValueError(f"images must be [H, W, 3] or [N, H, W, 3], got {batch.shape}")
    batch = np.stack([as_image(image, "images") for image in batch])
    target = as_image(target)
    if target_size:
        from tf_propo import image_io

        target = image_io.resize_short_edge(target, target_size)
    return metrics.TextureMetrics(target).texture_loss(batch).astype(np.float64)
