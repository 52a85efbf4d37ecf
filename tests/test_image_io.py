"""Image reading: formats and odd pixel layouts; every kind of bad file; atomic writing."""

import os
import struct
import zlib

import cv2
import numpy as np
import pytest

from tf_propo import image_io


def write_png_chunks(path, width, height, bit_depth, color_type, raw_rows, palette=None):
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    body = chunk(b"IHDR", ihdr)
    if palette is not None:
        body += chunk(b"PLTE", bytes(palette))
    body += chunk(b"IDAT", zlib.compress(raw_rows)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + body)


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)


def test_png_rgb_roundtrip(tmp_path, rgb):
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    got = image_io.read_image(path)
    assert got.shape == (20, 24, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, rgb / 255.0, atol=1e-6)


@pytest.mark.parametrize("ext,tolerance", [(".jpg", 0.2), (".webp", 0.2), (".bmp", 1e-6)])
def test_other_formats(tmp_path, rgb, ext, tolerance):
    smooth = cv2.GaussianBlur(rgb, (5, 5), 2)
    path = tmp_path / f"a{ext}"
    assert cv2.imwrite(str(path), smooth[:, :, ::-1])
    got = image_io.read_image(path)
    assert np.abs(got - smooth / 255.0).mean() < tolerance / 4


def test_grayscale_rgba_and_16_bit(tmp_path, rgb):
    gray = rgb[:, :, 0]
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    got = image_io.read_image(tmp_path / "g.png")
    assert got.shape == (20, 24, 3)
    np.testing.assert_allclose(got[:, :, 1], gray / 255.0, atol=1e-6)

    rgba = np.dstack([rgb, np.full(gray.shape, 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba[:, :, [2, 1, 0, 3]])
    np.testing.assert_allclose(image_io.read_image(tmp_path / "a.png"), rgb / 255.0, atol=1e-6)

    deep = rgb.astype(np.uint16) * 257 + 3
    cv2.imwrite(str(tmp_path / "d.png"), deep[:, :, ::-1])
    np.testing.assert_allclose(image_io.read_image(tmp_path / "d.png"), deep / 65535.0,
                               atol=1e-6)


def test_palette_png(tmp_path):
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255]
    rows = b"".join(b"\x00" + bytes([(x + y) % 3 for x in range(16)]) for y in range(16))
    write_png_chunks(tmp_path / "p.png", 16, 16, 8, 3, rows, palette)
    got = image_io.read_image(tmp_path / "p.png")
    np.testing.assert_allclose(got[0, 0], [1, 0, 0])
    np.testing.assert_allclose(got[0, 1], [0, 1, 0])
    np.testing.assert_allclose(got[0, 2], [0, 0, 1])


def bad(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_bad_files_are_refused_with_one_line(tmp_path, rgb):
    cv2.imwrite(str(tmp_path / "ok.png"), rgb)
    png = (tmp_path / "ok.png").read_bytes()
    cv2.imwrite(str(tmp_path / "ok.jpg"), rgb)
    jpeg = (tmp_path / "ok.jpg").read_bytes()
    cases = {
        "missing": (tmp_path / "nope.png", "no such file"),
        "directory": (tmp_path, "is a directory"),
        "empty": (bad(tmp_path, "e.png", b""), "empty file"),
        "text": (bad(tmp_path, "t.png", b"hello, I am not an image\n" * 3), "not a PNG"),
        "corrupt png": (bad(tmp_path, "c.png", png[:40] + b"\0" * 200), "corrupt"),
        "truncated png": (bad(tmp_path, "tr.png", png[:len(png) // 2]), "corrupt"),
        "truncated jpeg": (bad(tmp_path, "tr.jpg", jpeg[:len(jpeg) // 2]), "truncated"),
    }
    for case, (path, message) in cases.items():
        with pytest.raises(image_io.ImageError, match=message) as info:
            image_io.read_image(path)
        assert "\n" not in str(info.value), case


def test_tiny_zero_and_huge_sizes(tmp_path):
    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((8, 40, 3), np.uint8))
    with pytest.raises(image_io.ImageError, match="at least 16"):
        image_io.read_image(tmp_path / "tiny.png")
    write_png_chunks(tmp_path / "zero.png", 0, 0, 8, 2, b"")
    with pytest.raises(image_io.ImageError, match="at least 16"):
        image_io.read_image(tmp_path / "zero.png")
    # A header that claims 40000 x 40000 is refused before anything is decoded.
    write_png_chunks(tmp_path / "bomb.png", 40000, 40000, 8, 2, b"\0" * 10)
    with pytest.raises(image_io.ImageError, match="at most 8192"):
        image_io.read_image(tmp_path / "bomb.png")


def test_write_is_atomic_and_checks_the_path(tmp_path, rgb):
    out = tmp_path / "sub" / "o.png"
    image_io.write_image(out, rgb / 255.0)
    np.testing.assert_allclose(image_io.read_image(out), rgb / 255.0, atol=1e-6)
    assert os.listdir(tmp_path / "sub") == ["o.png"]
    with pytest.raises(image_io.ImageError, match="must end in"):
        image_io.write_image(tmp_path / "o.txt", rgb / 255.0)
    with pytest.raises(image_io.ImageError, match="is a directory"):
        image_io.check_output_path(tmp_path)


def test_failed_write_leaves_no_file(tmp_path, monkeypatch, rgb):
    def explode(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", explode)
    with pytest.raises(OSError):
        image_io.write_image(tmp_path / "o.png", rgb / 255.0)
    assert os.listdir(tmp_path) == []


def test_resize_short_edge_and_tiling():
    image = np.random.default_rng(0).random((40, 80, 3)).astype(np.float32)
    small = image_io.resize_short_edge(image, 20)
    assert small.shape == (20, 40, 3)
    assert abs(small.mean() - image.mean()) < 0.01
    strip = image_io.tile_horizontally([small, small[:10]], gap=4)
    assert strip.shape == (20, 84, 3)


def test_special_files_are_refused_without_reading_them(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # opening it for reading would block for ever
    with pytest.raises(image_io.ImageError, match="not a regular file"):
        image_io.read_image(fifo)
    with pytest.raises(image_io.ImageError, match="not a regular file"):
        image_io.read_image("/dev/zero")


def test_webp_size_is_checked_from_its_header(tmp_path, rgb):
    for quality in (80, 101):  # lossy VP8, lossless VP8L
        ok, encoded = cv2.imencode(".webp", rgb, [cv2.IMWRITE_WEBP_QUALITY, quality])
        data = encoded.tobytes()
        assert image_io._header_size("webp", data) == (24, 20)
    # A lossless header declaring 16383 x 16383 px: refused before any decoding.
    bits = (16383 - 1) | ((16383 - 1) << 14)
    payload = b"\x2f" + struct.pack("<I", bits) + b"\x00" * 16
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload
    path = tmp_path / "bomb.webp"
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk)
    with pytest.raises(image_io.ImageError, match="16383x16383.*at most 8192"):
        image_io.read_image(path)


def test_jpeg_end_is_found_by_walking_its_segments(tmp_path, rgb):
    ok, encoded = cv2.imencode(".jpg", rgb[:, :, ::-1])
    data = encoded.tobytes()
    # Bytes after the end-of-image marker (a Motion Photo's video) are not corruption.
    path = tmp_path / "motion.jpg"
    path.write_bytes(data + b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    np.testing.assert_allclose(image_io.read_image(path), image_io.read_image(
        _written(tmp_path / "plain.jpg", data)), atol=0)
    # A truncated image whose EXIF thumbnail (in APP1) ends with its own end marker.
    thumbnail = b"Exif\x00\x00" + data  # a whole JPEG inside the APP1 segment
    app1 = b"\xff\xe1" + struct.pack(">H", len(thumbnail) + 2) + thumbnail
    truncated = data[:2] + app1 + data[2:len(data) // 2]
    with pytest.raises(image_io.ImageError, match="truncated JPEG"):
        image_io.read_image(_written(tmp_path / "cut.jpg", truncated))
    progressive = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert image_io._jpeg_complete(progressive)
    assert not image_io._jpeg_complete(progressive[:-2])


def _written(path, data):
    path.write_bytes(data)
    return path


def test_corrupt_png_says_nothing_but_the_error(tmp_path, rgb):
    import subprocess
    import sys

    ok, encoded = cv2.imencode(".png", rgb)
    data = bytearray(encoded.tobytes())
    data[60:80] = b"\x00" * 20  # inside IDAT: libpng reports a CRC / data error itself
    path = _written(tmp_path / "corrupt.png", bytes(data))
    code = ("import sys; from tf_propo import image_io\n"
            "try:\n    image_io.read_image(sys.argv[1])\n"
            "except image_io.ImageError as e:\n    print(e)")
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                            text=True, timeout=60)
    assert "corrupt" in result.stdout and result.stderr == ""


def test_images_written_together_or_not_at_all(tmp_path, monkeypatch, rgb):
    image = rgb / 255.0
    outputs = {str(tmp_path / "o_stages.png"): image, str(tmp_path / "o.png"): image}
    image_io.write_images(outputs)
    assert sorted(os.listdir(tmp_path)) == ["o.png", "o_stages.png"]
    for path in outputs:
        os.remove(path)
    write = image_io.write_image

    def interrupted_second(path, pixels):
        if path.endswith("o.png"):
            raise KeyboardInterrupt  # Ctrl-C between the strip and the result
        write(path, pixels)

    monkeypatch.setattr(image_io, "write_image", interrupted_second)
    with pytest.raises(KeyboardInterrupt):
        image_io.write_images(outputs)
    assert os.listdir(tmp_path) == []
