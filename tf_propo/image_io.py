"""Validated image reading and atomic image writing (OpenCV).

Every image enters the project through `read_image`, which returns float32 RGB in [0, 1] of
shape (H, W, 3) or raises ImageError (a UsageError: one line, exit code 2 in the apps).
Grayscale is replicated to RGB, alpha is dropped, 16-bit is scaled by 1/65535, palette PNGs
are expanded by the decoder.

Size limits: each side at least MIN_SIDE px (the texture loss pools four times), at most
MAX_SIDE px (a decompression bomb is refused from its header, before decoding).
"""

import os
import stat
import struct

import cv2
import numpy as np

from tf_propo import native_stderr
from tf_propo.errors import UsageError
from tf_propo.files import atomic_write, check_creatable

MIN_SIDE = 16
MAX_SIDE = 8192
# No image of at most MAX_SIDE² takes more (an uncompressed 16-bit RGBA BMP is 512 MiB): a
# longer file is refused before it is read in full.
MAX_FILE_BYTES = 2**29 + 2**20
SUPPORTED = "PNG, JPEG, WebP or BMP"
WRITABLE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

# OpenCV writes decoder warnings straight to stderr; we report our own single line instead.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


class ImageError(UsageError):
    pass


def _sniff_format(head):
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM"):
        return "bmp"
    return None


def _jpeg_markers(data):
    """(marker, offset) of a JPEG's markers in order: segments are skipped by their lengths
    (so an EXIF thumbnail's own markers are not seen), scans up to their next real marker;
    the walk ends at the end-of-image marker, at the end of the data, or at a non-marker."""
    i, n = 2, len(data)
    while i + 1 < n:
        if data[i] != 0xFF:
            return
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        yield marker, i
        if marker == 0xD9:
            return
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if i + 4 > n:
            return
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
        while marker == 0xDA:  # entropy-coded data: up to the next real marker
            j = data.find(b"\xff", i)
            if j < 0 or j + 1 >= n:
                return
            following = data[j + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7:  # stuffing, restart
                i = j + 2
            elif following == 0xFF:
                i = j + 1
            else:
                i, marker = j, None


def _jpeg_size(data):
    """(width, height) from the first start-of-frame marker, or None."""
    for marker, i in _jpeg_markers(data):
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and i + 9 <= len(data):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
    return None


def _jpeg_complete(data):
    """Whether the JPEG's markers reach its end-of-image marker (_jpeg_markers). Bytes after
    it (a Motion Photo's video) are fine."""
    return any(marker == 0xD9 for marker, _ in _jpeg_markers(data))


def _webp_size(data):
    """(width, height) of a WebP's first chunk (lossy VP8, lossless VP8L or extended VP8X)."""
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = struct.unpack("<I", data[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return (int.from_bytes(data[24:27], "little") + 1,
                int.from_bytes(data[27:30], "little") + 1)
    return None


def _header_size(kind, data):
    """(width, height) read from the header without decoding, or None where unknown."""
    if kind == "png" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if kind == "webp":
        return _webp_size(data)
    if kind == "bmp" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    if kind == "jpeg":
        return _jpeg_size(data)
    return None


def _check_size(path, width, height):
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageError(f"{path}: image is {width}x{height}; each side must be at least "
                         f"{MIN_SIDE} px")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ImageError(f"{path}: image is {width}x{height}; each side must be at most "
                         f"{MAX_SIDE} px")


# The float32 factor that maps each decoded pixel type's full range onto [0, 1].
_SCALES = {np.dtype(np.uint8): 1.0 / 255.0, np.dtype(np.uint16): 1.0 / 65535.0,
           np.dtype(np.float32): 1.0}


def _scaled(image):
    if image.dtype not in _SCALES:
        raise ValueError(f"unsupported pixel type {image.dtype}")
    return image.astype(np.float32) * np.float32(_SCALES[image.dtype])


def from_uint8(image):
    """float32 in [0, 1] from uint8 pixels, exactly as every reader here converts them (an
    array and the file it came from must give the same texture, to the last bit)."""
    return _scaled(np.asarray(image, np.uint8))


def _to_rgb_float(image):
    image = _scaled(image)
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels == 1:
        return np.repeat(image, 3, axis=2)
    if channels == 4:
        image = image[:, :, :3]
    # OpenCV decodes to BGR.
    return np.ascontiguousarray(np.clip(image[:, :, ::-1], 0.0, 1.0))


def read_image(path):
    """Read an image file as float32 RGB in [0, 1], shape (H, W, 3); ImageError if unusable."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a directory, not an image")
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would hang, /dev/zero not end
            raise ImageError(f"{path}: not a regular file")
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB, more than an image "
                         f"of at most {MAX_SIDE}x{MAX_SIDE} px holds")
    if not data:
        raise ImageError(f"{path}: empty file")
    kind = _sniff_format(data[:16])
    if kind is None:
        raise ImageError(f"{path}: not a {SUPPORTED} image")
    size = _header_size(kind, data)
    if size is not None:
        _check_size(path, *size)
    if kind == "jpeg" and not _jpeg_complete(data):
        # libjpeg pads a truncated file with grey and only warns; refuse it instead.
        raise ImageError(f"{path}: corrupt or truncated JPEG")
    with native_stderr.captured(replay_on_error=False):  # libpng's own "libpng error" line
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageError(f"{path}: corrupt or truncated {kind.upper()} image")
    _check_size(path, image.shape[1], image.shape[0])
    return _to_rgb_float(image)


def to_uint8(image):
    """float RGB in [0, 1] -> uint8, rounding to nearest."""
    return np.clip(np.rint(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)


def check_output_path(path):
    """Fail early, before any work, if `path` cannot take an image."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a directory")
    ext = os.path.splitext(path)[1].lower()
    if ext not in WRITABLE_EXTENSIONS:
        raise ImageError(f"{path}: output must end in one of {', '.join(WRITABLE_EXTENSIONS)}")
    check_creatable(path, path, ImageError)


def write_image(path, image):
    """Write float RGB [0, 1] (H, W, 3) atomically: a temp file beside `path`, then rename, so
    readers never see a half-written image and a failure leaves no file behind."""
    path = os.fspath(path)
    check_output_path(path)
    ext = os.path.splitext(path)[1].lower()
    pixels = to_uint8(image)[:, :, ::-1]
    ok, encoded = cv2.imencode(ext, pixels)
    if not ok:
        raise ImageError(f"{path}: could not encode image")
    atomic_write(path, lambda f: f.write(encoded.tobytes()), suffix=ext)


def write_images(outputs):
    """Write {path: image} in order, each atomically; if one fails or is interrupted, those
    already written are removed: a run leaves all its outputs or none."""
    written = []
    try:
        for path, image in outputs.items():
            write_image(path, image)
            written.append(path)
    except BaseException:
        for path in written:
            os.remove(path)
        raise


def resize_short_edge(image, size):
    """Resize so the short edge is `size` px (area filter when shrinking, cubic when growing)."""
    height, width = image.shape[:2]
    scale = size / min(height, width)
    if scale == 1:
        return image
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.clip(cv2.resize(image, new, interpolation=interpolation), 0.0, 1.0)


def tile_horizontally(images, gap=4):
    """Images of equal height side by side with a white gap: strips of samples or stages."""
    height = max(im.shape[0] for im in images)
    parts = []
    for i, im in enumerate(images):
        if im.shape[0] != height:
            pad = np.ones((height - im.shape[0], im.shape[1], 3), np.float32)
            im = np.concatenate([im, pad], axis=0)
        if i:
            parts.append(np.ones((height, gap, 3), np.float32))
        parts.append(im)
    return np.concatenate(parts, axis=1)
