"""Run a module as __main__ in a test's setting, for what a flag of the module cannot set
(tests only):

    python tests/launch.py [--logical_cpus=N] [--mock_tfds=N] MODULE [ARGS...]

--logical_cpus=N splits this process's CPU into N logical devices, so that
tf.distribute.MirroredStrategy has N replicas on a machine without GPUs; --mock_tfds=N serves
every tfds dataset as N random examples (tfds.testing.mock_data), so that tfds:NAME targets
train without a download.
"""

import contextlib
import runpy
import sys

from tf_propo import cli


def main():
    options = {}
    args = sys.argv[1:]
    while args and args[0].startswith("--"):
        name, _, value = args.pop(0)[2:].partition("=")
        options[name] = int(value)
    module = args.pop(0)
    cli.import_tensorflow_quietly()
    import tensorflow as tf

    if "logical_cpus" in options:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * options["logical_cpus"])
    with contextlib.ExitStack() as stack:
        if "mock_tfds" in options:
            import tensorflow_datasets as tfds

            stack.enter_context(tfds.testing.mock_data(num_examples=options["mock_tfds"]))
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
