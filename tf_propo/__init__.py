"""tf-propo: fast neural texture synthesis in TensorFlow 2.

Data flows one way: image -> VGG features -> texture gradients -> pseudo optimizer -> image.

    vgg       the VGG19 encoder (named taps, preprocessing inside)
    weights   fetch / verify / cache / convert the pretrained VGG19 weights
    texture   Gram matrices, the texture loss, its closed-form feature gradient, diversity
    gatys     optimisation-based synthesis (the quality reference)
    image_io  validated image reading and atomic writing
    quilting  image quilting, the fast default
    api       the public API below: TextureSynthesizer (from_preset, load, generate,
              synthesize -> Synthesis), list_presets, texture_loss, and UsageError
              (input that cannot be used: an unreadable target, a size that cannot fit)
"""

from tf_propo.api import Preset, Synthesis, TextureSynthesizer, list_presets, texture_loss
from tf_propo.errors import UsageError

__version__ = "0.1.0"
__all__ = ["Preset", "Synthesis", "TextureSynthesizer", "UsageError", "list_presets",
           "texture_loss", "__version__"]
