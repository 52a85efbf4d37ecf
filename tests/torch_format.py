"""Write PyTorch checkpoints without torch, so the tests can make them: the legacy format
(five pickles, then raw storages) and the zip format. Fake `torch` modules are registered only
while pickling, so the pickles name torch._utils._rebuild_tensor_v2 and torch.FloatStorage
exactly as real ones do."""

import collections
import contextlib
import io
import pickle
import struct
import sys
import types
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class _Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride = tuple(int(np.prod(self.shape[i + 1:])) for i in range(len(self.shape)))
        return (sys.modules["torch._utils"]._rebuild_tensor_v2,
                (self.storage, 0, self.shape, stride, False, collections.OrderedDict()))


@contextlib.contextmanager
def _fake_torch():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    torch.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        yield torch
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _Pickler(pickle.Pickler):
    def __init__(self, f, torch):
        super().__init__(f, protocol=2)
        self.torch = torch

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", self.torch.FloatStorage, obj.key, "cpu", obj.array.size, None)
        return None


def _tensors(state):
    tensors = collections.OrderedDict()
    storages = []
    for i, (key, array) in enumerate(state.items()):
        array = np.ascontiguousarray(array, np.float32)
        storage = _Storage(str(1000 + i), array.ravel())
        storages.append(storage)
        tensors[key] = _Tensor(storage, tuple(array.shape))
    return tensors, storages


def save_legacy(path, state):
    """state: {key: float32 array}. Returns nothing; writes the legacy .pth format."""
    tensors, storages = _tensors(state)
    with _fake_torch() as torch, open(path, "wb") as f:
        for obj in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                          "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(obj, f, protocol=2)
        _Pickler(f, torch).dump(tensors)
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write(struct.pack("<q", s.array.size))
            f.write(s.array.astype("<f4").tobytes())


def save_zip(path, state):
    """The zip format of torch.save (PyTorch >= 1.6)."""
    tensors, storages = _tensors(state)
    buffer = io.BytesIO()
    with _fake_torch() as torch:
        _Pickler(buffer, torch).dump(tensors)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buffer.getvalue())
        for s in storages:
            z.writestr(f"archive/data/{s.key}", s.array.astype("<f4").tobytes())


def save_hostile(path, command):
    """A legacy-looking checkpoint whose state-dict pickle calls os.system(command)."""

    class Exploit:
        def __reduce__(self):
            import os
            return (os.system, (command,))

    with open(path, "wb") as f:
        pickle.dump(LEGACY_MAGIC, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"little_endian": True}, f, protocol=2)
        pickle.dump({"0.weight": Exploit()}, f, protocol=2)
        pickle.dump([], f, protocol=2)
