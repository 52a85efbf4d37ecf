"""The --precision flag: pick and set the Keras mixed-precision policy.

Grams and losses are computed in float32 whatever the policy (texture.py casts), so a policy
only changes the VGG / network arithmetic.
"""

import contextlib

import keras

from tf_propo.errors import UsageError

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")


def _cpu_has_bf16():
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve(precision):
    """'auto' -> a concrete policy for this machine; other names are returned as they are.

    auto: on a GPU, mixed_bfloat16 from compute capability 8.0 (Ampere, Hopper: as fast as
    float16 and needs no loss scaling), mixed_float16 before; on a CPU with AVX512-BF16 or AMX,
    mixed_bfloat16 (2.0x float32 for VGG19 measured on a 2-core AVX512-BF16 machine; float16
    is slow on CPUs); float32 otherwise.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, "
                         f"got {precision!r}")
    if precision != "auto":
        return precision
    import tensorflow as tf  # here only: train_jax uses cpu_policy without TensorFlow

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability") or (0, 0)
        return "mixed_bfloat16" if tuple(capability) >= (8, 0) else "mixed_float16"
    return cpu_policy()


def cpu_policy():
    """mixed_bfloat16 on CPUs with AVX512-BF16 or AMX, float32 otherwise."""
    return "mixed_bfloat16" if _cpu_has_bf16() else "float32"


def apply(precision):
    """Set the global Keras policy from a --precision value; returns the policy name."""
    policy = resolve(precision)
    keras.mixed_precision.set_global_policy(policy)
    return policy


@contextlib.contextmanager
def building_under(policy):
    """Layers built inside take `policy` (a concrete name, see resolve); the global policy is
    restored after, so one process can hold models of several precisions."""
    previous = keras.config.dtype_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
