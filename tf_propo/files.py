"""Atomic file writing: readers never see a half-written file, a failure leaves none."""

import os
import shutil
import tempfile


def unwritable_parent(path):
    """The folder that stops `path` from being created (its nearest existing ancestor, when
    that is a file or not writable), or None if it can be: checked before any long work."""
    existing = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
        return existing
    return None


def atomic_write(path, write, suffix=""):
    """Call write(f) on a binary temp file beside `path`, then rename it to `path`."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_directory(path, write):
    """Call write(tmp_dir) on a new temp directory beside `path`, then rename it to `path`
    (which must not exist); returns write's result. A failure leaves nothing behind."""
    if os.path.exists(path):
        raise FileExistsError(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        result = write(tmp)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give what mkdir would
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
