"""The numbers every synthesis reports, measured the same way for every method.

texture_loss        L_tex of an image against the target on texture.TEXTURE_LAYERS, float32
                    normalised VGG19 with average pooling (the authors' loss).
noise_texture_loss  the same for `reference_noise` with the same seed: uniform noise in [0, 1],
                    one scale-free denominator shared by all methods, so
                    texture_loss / noise_texture_loss compares methods fairly.
diversity           texture.diversity on texture.DIVERSITY_LAYER over samples of one target.
dark_fraction       the share of near-black pixels: the Gram loss barely sees a few
                    saturated blobs (pseudo optimizers make them), this number does.
novel_patch_fraction  the blob measure: the share of 16×16 patches whose mean colour occurs
                    nowhere in the exemplar. Spatial, so matching the pixel histogram to
                    the target's (which takes dark_fraction to 0) leaves a blob counted.
grid.grid_score     the grid measure (tf_propo.grid).
seam_ratio          how visible the wrap-around seams are (about 1: tiles without a seam).
split_halves        a target's two halves: synthesise from one, score against the other (a
                    real sample of the texture no method saw; evaluate --protocol), unless
                    halves_repeat (tiled textures whose halves are copies).
"""

import numpy as np
import tensorflow as tf

from tf_propo import shapes
from tf_propo import texture
from tf_propo import tiles
from tf_propo import weights


DARK_LEVEL = 10 / 255  # a pixel is near-black when even its brightest channel is below this


def dark_fraction(images):
    """Fraction of the pixels of an image [H, W, 3] or batch whose brightest channel is below
    DARK_LEVEL (the held-out textures here have ~0; a blob of 20x20 px at 256² is 0.6%)."""
    return float(np.mean(np.max(np.asarray(images), axis=-1) < DARK_LEVEL))


NOVEL_PATCH = 16
# Euclidean distance in RGB [0, 1] beyond which a patch's mean colour is novel: about 15
# levels per channel. A pasted black blob sits far beyond it even after a histogram match,
# while the held-out halves of the real textures here have no novel patch at all.
NOVEL_DISTANCE = 0.1


def _window_means(image, patch):
    """Mean colour of every patch × patch window of an image [H, W, 3]: [H-p+1, W-p+1, 3]."""
    integral = np.pad(np.cumsum(np.cumsum(np.asarray(image, np.float64), 0), 1),
                      [(1, 0), (1, 0), (0, 0)])
    sums = (integral[patch:, patch:] - integral[:-patch, patch:]
            - integral[patch:, :-patch] + integral[:-patch, :-patch])
    return sums / (patch * patch)


def novel_patch_fraction(images, exemplar, patch=NOVEL_PATCH, distance=NOVEL_DISTANCE):
    """Share of the non-overlapping patch × patch patches of `images` ([H, W, 3] or a batch)
    whose mean colour lies farther than `distance` from the mean colour of every patch ×
    patch window of `exemplar` [h, w, 3]: appearance the exemplar does not have, which is
    what a blob is."""
    images = _batched(images)
    patch = min(patch, *images.shape[1:3], *np.shape(exemplar)[:2])
    known = _window_means(exemplar, patch).reshape(-1, 3)
    known_norms = np.sum(known * known, axis=1)
    novel, total = 0, 0
    for image in images:
        means = _window_means(image, patch)[::patch, ::patch].reshape(-1, 3)
        nearest = np.full(len(means), np.inf)
        for start in range(0, len(known), 65536):  # bounded memory for large exemplars
            chunk = known[start:start + 65536]
            squared = (np.sum(means * means, axis=1)[:, None] - 2 * means @ chunk.T
                       + known_norms[None, start:start + 65536])
            nearest = np.minimum(nearest, squared.min(axis=1))
        novel += int(np.sum(nearest > distance ** 2))
        total += len(means)
    return novel / total


def seam_ratio(images):
    """How visible the wrap-around seams of images [H, W, 3] or a batch are: the mean pixel
    difference across them (last row to first, last column to first) over that between
    interior neighbours. About 1 for a texture that tiles without a seam; an ordinary
    texture's opposite edges are unrelated (1.15-3.2 for quilts of three bundled samples)."""
    images = _batched(images).astype(np.float64)
    across = (np.abs(images[:, 0] - images[:, -1]).mean()
              + np.abs(images[:, :, 0] - images[:, :, -1]).mean())
    inside = (np.abs(np.diff(images, axis=1)).mean() + np.abs(np.diff(images, axis=2)).mean())
    return float(across / inside)


def split_halves(image):
    """(seen, unseen): the two halves of an image [H, W, 3] cut across its long side (left |
    right when W >= H, top / bottom otherwise); a middle odd column or row is dropped."""
    height, width = image.shape[:2]
    if width >= height:
        half = width // 2
        return image[:, :half], image[:, width - half:]
    half = height // 2
    return image[:half], image[height - half:]


def halves_repeat(seen, unseen):
    """Whether two halves are copies of each other up to resampling (mean difference under
    one 8-bit level): tiled textures whose halves repeat have no unseen half to score
    against (a real sample would score 0, any method infinitely worse)."""
    return float(np.mean(np.abs(np.asarray(seen, np.float32)
                                - np.asarray(unseen, np.float32)))) < 1 / 255


def reference_noise(seed, size, samples=1):
    """Uniform [0, 1] noise images [samples, H, W, 3] (size: int or (H, W)), from `seed`."""
    height, width = shapes.sides(size)
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, (samples, height, width, 3)).astype(np.float32)


class TextureMetrics:
    """Target statistics and the metrics against them, on a float32 pretrained encoder."""

    def __init__(self, target, vgg_weights="normalized", layers=texture.TEXTURE_LAYERS,
                 encoder=None, padding="zeros"):
        """encoder: another TextureMetrics' encoder to share (same layers, weights and
        padding). padding: the VGG19's, zeros as the authors' loss; "reflect" keeps the
        frame zero padding draws along the borders out of the statistics."""
        self.layers = tuple(layers)
        self.encoder = encoder or weights.pretrained_encoder(
            self.layers + (texture.DIVERSITY_LAYER,), source=vgg_weights, dtype="float32",
            padding=padding)
        self.target_grams = self.grams(target)

    def features(self, images):
        return self.encoder(tf.convert_to_tensor(_batched(images), tf.float32))

    def grams(self, images):
        """{layer: [B, C, C]} of one image (H, W, 3) or a batch; a tile at a time when larger
        than one (tf_propo.tiles: the same values)."""
        return tiles.gram_matrices(self.encoder, _batched(images), self.layers)

    def texture_loss(self, images):
        """Per-image texture loss, numpy [B]."""
        total, _ = texture.gram_loss(self.grams(images), self.target_grams, self.layers)
        return total.numpy()

    def diversity(self, images):
        """Diversity of K >= 2 samples of the target."""
        images = _batched(images)
        if tiles.needed(images.shape):
            return tiles.diversity(self.encoder, images)
        return float(texture.diversity(self.features(images)[texture.DIVERSITY_LAYER]))


def _batched(images):
    images = np.asarray(images, np.float32)
    return images[None] if images.ndim == 3 else images
