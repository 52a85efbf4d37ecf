"""Native libraries' own stderr lines kept out of a command's output.

TensorFlow's C++ logging, libpng and LiteRT's XNNPACK delegate write to file descriptor 2
directly, where Python's sys.stderr cannot filter them, while every command here promises
progress lines and at most one error line. `captured()` points descriptor 2 at a temporary
file for the duration of a call and replays what was written only if the call fails.
"""

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def captured(replay_on_error=True):
    """Descriptor 2 captured in the block; its output is replayed on an exception when
    `replay_on_error` (a caller that reports the failure itself passes False)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            if replay_on_error:
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
