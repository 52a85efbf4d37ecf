"""Image quilting as one TensorFlow graph: what the export runs (SavedModel, LiteRT), and
evaluate's `quilt:graph`.

The same algorithm as tf_propo.quilting (Efros & Freeman 2001: blocks laid in raster order,
each drawn among those whose overlap agrees best with what is placed, joined along the
minimum-error seam, the seam feathered, used source blocks skipped or made dearer, then the
colours' mean and covariance matched to the exemplar's), written in graph ops only so that
an app runs it without Python: the overlap errors are one correlation by products of DFT
matrices and box sums, the seams a dynamic programme unrolled over the block's rows, the
choice among the candidates read from the caller's noise. Its differences from the NumPy
version: the randomness comes from the noise image (a new noise, a new texture), the
colours are matched to all of the exemplar's pixels, and there is no tileable mode. Its
DFT matrices grow with the exemplar's sides (the NumPy version suits large exemplars).

Every op has a LiteRT builtin (no Flex ops); the loop over blocks is a while loop, so the
output size may vary in a SavedModel.
"""

import numpy as np
import tensorflow as tf

from tf_propo import quilting

# Colour covariances get this much added to their diagonal before the Cholesky factors
# (the same as ot.synthesis' cholesky matching): flat exemplars stay well-conditioned.
COLOUR_EPS = 1e-2
# Added to a used source position's error: larger than any overlap error of [0, 1] images.
_USED = 1e9


def block_and_overlap(exemplar_side):
    """(block, overlap) in px for an exemplar whose short side is `exemplar_side`, as
    tf_propo.quilting chooses them; static, so the graph's regions have static shapes."""
    block = quilting.default_block_size((exemplar_side, exemplar_side))
    return block, quilting.default_overlap(block)


def _gaussian_kernel(sigma):
    """OpenCV's 1-D Gaussian for float images (radius 4σ), normalised."""
    radius = max(1, int(round(sigma * 4)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-x * x / (2 * sigma * sigma))
    return (kernel / kernel.sum()).astype(np.float32)


def _feathered(mask, sigma):
    """mask [b, b] blurred by a Gaussian of width `sigma` px, edges replicated (as
    cv2.GaussianBlur with BORDER_REPLICATE)."""
    kernel = _gaussian_kernel(sigma)
    radius = len(kernel) // 2
    image = mask[None, :, :, None]
    for axis, shape in ((1, [len(kernel), 1, 1, 1]), (2, [1, len(kernel), 1, 1])):
        first = tf.gather(image, [0] * radius, axis=axis)
        last = tf.gather(image, [image.shape[axis] - 1] * radius, axis=axis)
        image = tf.nn.conv2d(tf.concat([first, image, last], axis), kernel.reshape(shape),
                             1, "VALID")
    return image[0, :, :, 0]


def _seam_masks(errors):
    """errors [n, b, o]: n overlaps of b rows by o columns. [n, b, o] weights of the new
    block: 0 left of each overlap's minimum-error vertical path, 1 from it on (the dynamic
    programme of tf_propo.quilting._min_cut, unrolled over the rows)."""
    rows, width = errors.shape[1], errors.shape[2]
    blocked = tf.fill(tf.shape(errors[:, 0, :1]), np.float32(np.inf))
    costs = [errors[:, 0]]
    for y in range(1, rows):
        previous = costs[-1]
        left = tf.concat([blocked, previous[:, :-1]], 1)
        right = tf.concat([previous[:, 1:], blocked], 1)
        costs.append(errors[:, y] + tf.minimum(tf.minimum(left, previous), right))
    columns = tf.range(width)[None]
    path = [tf.argmin(costs[-1], axis=1, output_type=tf.int32)]
    for y in range(rows - 2, -1, -1):
        near = tf.abs(columns - path[-1][:, None]) <= 1
        path.append(tf.argmin(tf.where(near, costs[y], np.float32(np.inf)), axis=1,
                              output_type=tf.int32))
    path = tf.stack(path[::-1], axis=1)  # [n, b]
    return tf.cast(columns[:, None, :] >= path[:, :, None], tf.float32)


def _dft(n):
    """(cos, sin) [n, n] of the n-point DFT, F = cos − i·sin (k·j taken mod n first: exact
    angles in float32 for any n)."""
    k = tf.range(n)
    angle = (2 * np.pi) * tf.cast((k[:, None] * k[None, :]) % n, tf.float32) \
        / tf.cast(n, tf.float32)
    return tf.cos(angle), tf.sin(angle)


class _Correlator:
    """Σ over a window of image · template at every position of one image, [h, w, C] with
    [kh, kw, C] templates -> the [h - kh + 1, w - kw + 1] positions where it fits.

    By the DFT as real matrix products (correlation is a product of spectra; LiteRT has no
    complex multiply, and plain matrix products are fast everywhere): the image's spectrum is
    taken once, each template's costs a few products, ~25x faster than tf.nn.conv2d with a
    single-output 84 × 84 kernel on a CPU. Templates wrap around the image's ends, which
    never reaches the positions returned.
    """

    def __init__(self, image):
        self.shape = tf.shape(image)[:2]
        self.ch, self.sh = _dft(self.shape[0])
        self.cw, self.sw = _dft(self.shape[1])
        channels = tf.transpose(image, [2, 0, 1])  # [C, h, w]
        # F_h X F_w = (C X C − S X S) − i (C X S + S X C)
        self.real = self.ch @ channels @ self.cw - self.sh @ channels @ self.sw
        self.imag = -(self.ch @ channels @ self.sw + self.sh @ channels @ self.cw)

    def __call__(self, template):
        kh, kw = template.shape[0], template.shape[1]
        t = tf.transpose(template, [2, 0, 1])
        # conj(F_h T F_w), T zero beyond [kh, kw]: (C T C − S T S) + i (C T S + S T C)
        ch, sh = self.ch[:, :kh], self.sh[:, :kh]
        cw, sw = self.cw[:kw], self.sw[:kw]
        t_real = ch @ t @ cw - sh @ t @ sw
        t_imag = ch @ t @ sw + sh @ t @ cw
        product_real = tf.reduce_sum(self.real * t_real - self.imag * t_imag, axis=0)
        product_imag = tf.reduce_sum(self.real * t_imag + self.imag * t_real, axis=0)
        rows, cols = self.shape[0] - kh + 1, self.shape[1] - kw + 1
        # the inverse DFT's real part, at the positions where the template fits only
        ch, sh = self.ch[:rows], self.sh[:rows]
        cw, sw = self.cw[:, :cols], self.sw[:, :cols]
        real = (ch @ product_real - sh @ product_imag) @ cw \
            - (ch @ product_imag + sh @ product_real) @ sw
        return real / tf.cast(self.shape[0] * self.shape[1], tf.float32)


def _cholesky3(cov):
    """Lower Cholesky factor of a 3×3 SPD matrix, in closed form (LiteRT has no
    Cholesky op)."""
    l00 = tf.sqrt(cov[0, 0])
    l10, l20 = cov[1, 0] / l00, cov[2, 0] / l00
    l11 = tf.sqrt(cov[1, 1] - l10 * l10)
    l21 = (cov[2, 1] - l20 * l10) / l11
    l22 = tf.sqrt(cov[2, 2] - l20 * l20 - l21 * l21)
    zero = tf.zeros_like(l00)
    return tf.stack([tf.stack([l00, zero, zero]), tf.stack([l10, l11, zero]),
                     tf.stack([l20, l21, l22])])


def _lower_inverse3(lower):
    """Inverse of a 3×3 lower-triangular matrix, in closed form."""
    a, b, c = lower[0, 0], lower[1, 0], lower[1, 1]
    d, e, f = lower[2, 0], lower[2, 1], lower[2, 2]
    zero = tf.zeros_like(a)
    return tf.stack([tf.stack([1 / a, zero, zero]),
                     tf.stack([-b / (a * c), 1 / c, zero]),
                     tf.stack([(b * e - c * d) / (a * c * f), -e / (c * f), 1 / f])])


def match_colours(image, exemplar, eps=COLOUR_EPS):
    """image [H, W, 3] with its colours' mean and covariance moved to the exemplar's
    [h, w, 3] by one linear map (Cholesky whitening and colouring, as
    ot.linalg.match_covariance's "cholesky"), float32, clipped to [0, 1]."""
    def statistics(pixels):
        pixels = tf.reshape(pixels, [-1, 3])
        mean = tf.reduce_mean(pixels, axis=0)
        centred = pixels - mean
        count = tf.cast(tf.shape(pixels)[0], tf.float32)
        return mean, tf.matmul(centred, centred, transpose_a=True) / count + eps * tf.eye(3)

    mean_s, cov_s = statistics(image)
    mean_t, cov_t = statistics(exemplar)
    # y = (x − μ_s) L_s^{-T} L_t^T + μ_t (row vectors)
    transform = tf.matmul(_lower_inverse3(_cholesky3(cov_s)), _cholesky3(cov_t),
                          transpose_a=True, transpose_b=True)
    matched = tf.matmul(tf.reshape(image, [-1, 3]) - mean_s, transform) + mean_t
    return tf.clip_by_value(tf.reshape(matched, tf.shape(image)), 0.0, 1.0)


def quilt(exemplar, noise, block, overlap, tolerance=quilting.TOLERANCE,
          feather=quilting.FEATHER, usage_penalty=quilting.USAGE_PENALTY):
    """A texture shaped as `noise` [H, W, 3] (uniform in [−1, 1]: the randomness) quilted
    from `exemplar` [h, w, 3] in [0, 1] (stitch), its colours then matched to the
    exemplar's. float32 [H, W, 3] in [0, 1]."""
    return match_colours(stitch(exemplar, noise, block, overlap, tolerance, feather,
                                usage_penalty), exemplar)


def stitch(exemplar, noise, block, overlap, tolerance=quilting.TOLERANCE,
           feather=quilting.FEATHER, usage_penalty=quilting.USAGE_PENALTY):
    """The quilt shaped as `noise` [H, W, 3] from `exemplar` [h, w, 3], `block` × `block`
    blocks sharing `overlap` px (static ints; block ≤ the exemplar's short side), before
    any colour match; feather 0: every pixel an exemplar pixel; usage_penalty as
    tf_propo.quilting's. float32 [H, W, 3]."""
    if not 0 < overlap < block:
        raise ValueError(f"overlap must be between 0 and block ({block}), got {overlap}")
    exemplar = tf.convert_to_tensor(exemplar, tf.float32)
    noise = tf.convert_to_tensor(noise, tf.float32)
    height, width = tf.shape(noise)[0], tf.shape(noise)[1]
    step = block - overlap
    rows = tf.maximum(1, (height - overlap + step - 1) // step)
    cols = tf.maximum(1, (width - overlap + step - 1) // step)
    canvas_shape = tf.stack([(rows - 1) * step + block, (cols - 1) * step + block, 3])
    positions = tf.shape(exemplar)[:2] - block + 1
    # Squared errors do not change when both sides shift: centred values keep the
    # correlations' float32 rounding small.
    mean = tf.reduce_mean(exemplar, axis=[0, 1])
    correlate = _Correlator(exemplar - mean)
    # The overlap as three disjoint [block, block] masks: the corner (above and left), the
    # rest of the left strip, the rest of the top strip ((top, left, height, width) each).
    # Σ exemplar² under each at every position is the same for every block: a box sum.
    rectangles = ((0, 0, overlap, overlap), (overlap, 0, step, overlap),
                  (0, overlap, overlap, step))
    edge = tf.range(block)
    regions = [tf.cast(tf.logical_and(
        tf.logical_and(edge >= top, edge < top + height)[:, None],
        tf.logical_and(edge >= left, edge < left + width)[None, :]), tf.float32)
        for top, left, height, width in rectangles]
    squared = tf.reduce_sum(tf.square(exemplar - mean), axis=-1)[None, :, :, None]
    region_squares = [
        (tf.nn.avg_pool2d(squared, [height, width], 1, "VALID")[0, :, :, 0] * height * width)[
            top:top + positions[0], left:left + positions[1]]
        for top, left, height, width in rectangles]
    grid_y = tf.range(positions[0])[:, None]
    grid_x = tf.range(positions[1])[None, :]
    reach = max(1, block // 8)
    spread = max(1, block // 4)
    area = float((2 * spread + 1) ** 2)  # a use fades as in tf_propo.quilting
    forget = 1.0 - area / tf.maximum(tf.cast(positions[0] * positions[1], tf.float32), area)

    def place(index, canvas, used, usage):
        r, c = index // cols, index % cols
        y, x = r * step, c * step
        has_top, has_left = tf.cast(r > 0, tf.float32), tf.cast(c > 0, tf.float32)
        region = tf.slice(canvas, tf.stack([y, x, 0]), [block, block, 3])
        flags = (tf.maximum(has_top, has_left), has_left, has_top)
        known = sum(flag * mask for flag, mask in zip(flags, regions))
        template = known[..., None] * (region - mean)
        errors = (tf.reduce_sum(template * template) - 2 * correlate(template)
                  + sum(flag * square for flag, square in zip(flags, region_squares)))
        errors = tf.maximum(errors, 0.0)
        errors += usage_penalty * tf.reduce_mean(errors) * usage  # patch-usage uniformity
        # Skip source blocks near one already used while others remain (no lattice).
        all_used = tf.reduce_min(used) > 0
        errors = tf.where(all_used, errors, errors + _USED * used)
        flat = tf.reshape(errors, [-1])
        candidates = tf.cast(flat <= tf.reduce_min(flat) * (1 + tolerance) + 1e-6, tf.int32)
        count = tf.reduce_sum(candidates)
        pick = tf.cast((noise[tf.minimum(y, height - 1), tf.minimum(x, width - 1), 0] + 1)
                       / 2 * tf.cast(count, tf.float32), tf.int32)
        pick = tf.clip_by_value(pick, 0, count - 1)
        chosen = tf.argmax(tf.cast(tf.cumsum(candidates) > pick, tf.int32),
                           output_type=tf.int32)
        by, bx = chosen // positions[1], chosen % positions[1]

        def within(distance):  # 1 at the source positions this near the chosen one
            return tf.cast(tf.logical_and(tf.abs(grid_y - by) <= distance,
                                          tf.abs(grid_x - bx) <= distance), tf.float32)

        used = tf.maximum(used, within(reach))
        usage = usage * forget + within(spread)
        patch = tf.slice(exemplar, tf.stack([by, bx, 0]), [block, block, 3])
        difference = tf.reduce_sum(tf.square(patch - region), axis=-1)
        # The left overlap and the transposed top overlap, both b rows by `overlap` columns.
        seams = _seam_masks(tf.stack([difference[:, :overlap],
                                      tf.transpose(difference[:overlap])]))
        ones = tf.ones([block, step])
        left_mask = tf.concat([seams[0], ones], 1)
        top_mask = tf.transpose(tf.concat([seams[1], ones], 1))
        mask = tf.minimum(has_left * left_mask + (1 - has_left),
                          has_top * top_mask + (1 - has_top))
        if feather:
            mask = _feathered(mask, feather)
        mask = (known * mask + (1 - known))[..., None]
        change = mask * (patch - region)
        canvas += tf.pad(change, tf.stack([
            tf.stack([y, canvas_shape[0] - y - block]),
            tf.stack([x, canvas_shape[1] - x - block]), tf.constant([0, 0])]))
        return index + 1, canvas, used, usage

    _, canvas, _, _ = tf.while_loop(
        lambda index, *_: index < rows * cols, place,
        (tf.constant(0), tf.zeros(canvas_shape, tf.float32), tf.zeros(positions, tf.float32),
         tf.zeros(positions, tf.float32)))
    return canvas[:height, :width]
