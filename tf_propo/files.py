"""Atomic file writing: readers never see a half-written file, a failure leaves none."""

import os
import shutil
import tempfile

from tf_propo.errors import UsageError


def check_creatable(path, name, error=UsageError):
    """Raise `error` ("NAME: cannot write to FOLDER") when `path` cannot be created: its
    nearest existing ancestor is a file or not writable. Checked before any long work."""
    existing = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
        raise error(f"{name}: cannot write to {existing}")


def _make_parents(path):
    """Create the missing folders above `path`; returns them, the deepest first."""
    parent = os.path.dirname(os.path.abspath(path))
    missing = []
    while not os.path.exists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return missing


def _remove_folders(folders):
    for folder in folders:  # deepest first; one that is no longer empty stays
        try:
            os.rmdir(folder)
        except OSError:
            break


def atomic_write(path, write, suffix=""):
    """Call write(f) on a binary temp file beside `path`, then rename it to `path`. A failure
    (a full disk, an interrupt) leaves neither the file nor the folders made for it."""
    created = _make_parents(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix,
                                   dir=os.path.dirname(os.path.abspath(path)))
    except BaseException:
        _remove_folders(created)
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        _remove_folders(created)
        raise


def atomic_directory(path, write):
    """Call write(tmp_dir) on a new temp directory beside `path`, then rename it to `path`
    (which must not exist); returns write's result. A failure leaves nothing behind."""
    if os.path.exists(path):
        raise FileExistsError(path)
    created = _make_parents(path)
    try:
        tmp = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(os.path.abspath(path)))
    except BaseException:
        _remove_folders(created)
        raise
    try:
        result = write(tmp)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give what mkdir would
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_folders(created)
        raise
    return result


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
