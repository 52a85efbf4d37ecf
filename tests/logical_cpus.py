"""Run a module as __main__ with this process's CPU split into N logical devices, so that
tf.distribute.MirroredStrategy has N replicas on a machine without GPUs (tests only):

    python tests/logical_cpus.py N MODULE [ARGS...]
"""

import runpy
import sys

from tf_propo import cli


def main():
    count, module = int(sys.argv[1]), sys.argv[2]
    cli.import_tensorflow_quietly()
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    sys.argv = [module, *sys.argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
