"""How far an exported model's output is from the Keras pipeline's: what `export` reports
after loading and running what it wrote, and when that deserves a warning."""

import numpy as np

# An export whose texture on the check sample has a loss this many times Keras' (or more)
# gets a warning: its textures are visibly worse, not merely different.
LOSS_RATIO_WARNING = 1.25


def image_relative_error(exported, reference):
    """||exported − reference|| / ||reference|| (L2 over every pixel and channel)."""
    exported, reference = np.asarray(exported, np.float64), np.asarray(reference, np.float64)
    return float(np.linalg.norm(exported - reference) / max(np.linalg.norm(reference), 1e-12))


def parity(exported, reference, target):
    """Relative L2 image error and texture-loss ratio (exported / Keras) against `target`."""
    from tf_propo import metrics

    evaluation = metrics.TextureMetrics(target)
    losses = evaluation.texture_loss(np.stack([exported, reference]))
    return {"image_relative_error": image_relative_error(exported, reference),
            "texture_loss_ratio": float(losses[0] / max(losses[1], 1e-30))}


def warning(result, quantize):
    """A one-line warning for stderr when `result` (parity's) says the export's texture is
    much worse than Keras', else None."""
    ratio = result.get("texture_loss_ratio")
    if ratio is None or ratio < LOSS_RATIO_WARNING:
        return None
    advice = (" (--quantize=int8_mixed: the same file size at float quality)"
              if quantize == "int8" else "")
    return (f"warning: the exported model's texture loss is {ratio:.3g}x Keras' on the check "
            f"sample{advice}")
