"""What every command-line app shares: quiet TensorFlow, one-line errors, exit code 2.

Flags are parsed before TensorFlow is imported, so a bad flag fails in a fraction of a second;
the apps check their paths before the import too (run(main, tensorflow=False), then
import_tensorflow_quietly).
TF 2.21 logs through absl before absl's logging is initialised, which ignores
TF_CPP_MIN_LOG_LEVEL: its start-up chatter (oneDNN, CUDA probing) would bury the single error
line the command-line contract promises. So the import and the device probe run with file
descriptor 2 pointed at a temp file, replayed only if they fail.
"""

import errno
import os
import sys

from absl import app
from absl import flags
from absl import logging

from tf_propo import native_stderr
from tf_propo.errors import UsageError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
EXIT_USAGE = 2
EXIT_BUG = 1

flags.DEFINE_bool("debug", False, "On an unexpected error, print the whole traceback instead "
                  "of one line.")
# Seeds are non-negative and fit the int32 / int64 arithmetic the methods derive from them.
MAX_SEED = 2**31 - 1


def import_tensorflow_quietly():
    """Import TensorFlow and probe its devices with stderr captured (see the module doc)."""
    if "tensorflow" in sys.modules:
        return
    with native_stderr.captured():
        import tensorflow as tf

        tf.config.list_physical_devices()


def fail(message):
    """Print one line on stderr and exit with code 2."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    sys.exit(EXIT_USAGE)


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(str(e).splitlines()[0])


# Failures of the machine, not of the program: a full disk, a quota, a read-only file system,
# a permission. They end like bad input (one line, exit 2), and what was half-written is gone.
_ENVIRONMENT_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                       errno.ENAMETOOLONG}


def run(main, tensorflow=True):
    """absl's app.run, with bad flags and UsageError reported as one line and exit code 2.
    tensorflow=True imports TensorFlow (quietly) before main; tensorflow=False leaves it to
    main: an app that never needs it (the LiteRT runner), or one that checks its files first
    and then calls import_tensorflow_quietly, so that a bad path fails in a fraction of a
    second instead of after TensorFlow's 5 s import."""

    def guarded_main(argv):
        if len(argv) > 1:
            fail(f"unexpected positional arguments: {' '.join(argv[1:])}")
        logging.set_verbosity(logging.WARNING)
        if tensorflow:
            import_tensorflow_quietly()
        try:
            return main(argv)
        except UsageError as e:
            fail(str(e))
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            sys.exit(130)
        except Exception as e:  # a bug: one line, unless --debug asks for the traceback
            if flags.FLAGS.debug:
                raise
            if isinstance(e, OSError) and e.errno in _ENVIRONMENT_ERRORS:
                fail(f"{e.filename}: {e.strerror}" if e.filename else e.strerror)
            first = (str(e).strip().splitlines() or [""])[0]
            sys.stderr.write(f"error: unexpected {type(e).__name__}: {first} (a bug; run "
                             "again with --debug for the traceback and report it)\n")
            sys.stderr.flush()
            sys.exit(EXIT_BUG)

    app.run(guarded_main, flags_parser=_parse_flags)
