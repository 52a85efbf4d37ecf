"""The training app's tf.distribute strategies, and which process of a cluster writes the run.

Every worker of a MultiWorkerMirroredStrategy runs the same program on the same --model_dir.
Only the chief may write there (config, checkpoints, summaries): two writers race on the
checkpoint files and leave a second set of TensorBoard events. The other workers still save
their checkpoints, as TF's multi-worker guide asks (a save may take part in collective ops),
but into a private temporary directory that is deleted when the run ends; every worker
resumes from the chief's checkpoints.
"""

import contextlib
import json
import shutil
import tempfile

from tf_propo.errors import UsageError

STRATEGIES = ("default", "mirrored", "multi_worker")
TASK_TYPES = ("chief", "worker")


def cluster_task(tf_config):
    """(cluster, task type, task index) of a TF_CONFIG value; UsageError naming what is wrong.
    Checked before TensorFlow is imported, so a bad cluster fails in a fraction of a second
    instead of deep inside the strategy's constructor."""
    if not tf_config:
        raise UsageError("--distribution=multi_worker needs TF_CONFIG describing the cluster, "
                         'e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                         '"task": {"type": "worker", "index": 0}}')
    try:
        spec = json.loads(tf_config)
    except ValueError as e:
        raise UsageError(f"TF_CONFIG is not JSON ({e})") from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise UsageError("TF_CONFIG has no cluster (a mapping of task types to host:port lists)")
    for kind, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses or not all(
                isinstance(a, str) and a for a in addresses):
            raise UsageError(f"TF_CONFIG cluster[{kind!r}] is not a list of host:port strings")
    task = spec.get("task")
    if not isinstance(task, dict):
        raise UsageError("TF_CONFIG has no task (this process's type and index)")
    kind, index = task.get("type"), task.get("index")
    if kind not in TASK_TYPES or kind not in cluster:
        raise UsageError(f"TF_CONFIG task type {kind!r} is not one of the cluster's "
                         f"{', '.join(k for k in TASK_TYPES if k in cluster)}")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(
            cluster[kind]):
        raise UsageError(f"TF_CONFIG task index {index!r} is not in 0..{len(cluster[kind]) - 1}"
                         f" for the cluster's {len(cluster[kind])} {kind}(s)")
    return cluster, kind, index


def is_chief(cluster, task_type, task_index):
    """The chief writes the run: the 'chief' task, or worker 0 of a cluster without one."""
    return task_type == "chief" or (task_type == "worker" and task_index == 0
                                    and "chief" not in cluster)


def make_strategy(name, tf_config=None):
    """(strategy, chief) for --distribution=name; chief: whether this process writes the run."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy(), True
    if name == "multi_worker":
        chief = is_chief(*cluster_task(tf_config))
        try:
            return tf.distribute.MultiWorkerMirroredStrategy(), chief
        except ValueError as e:
            raise UsageError(f"TF_CONFIG: {str(e).splitlines()[0]}") from None
    if name != "default":
        raise ValueError(f"unknown strategy {name!r}")
    return tf.distribute.get_strategy(), True


@contextlib.contextmanager
def checkpoint_directory(model_dir, chief):
    """Where this process saves checkpoints: model_dir for the chief, otherwise a temporary
    directory removed on exit (see the module doc)."""
    if chief:
        yield model_dir
        return
    private = tempfile.mkdtemp(prefix="tf_propo-worker-")
    try:
        yield private
    finally:
        shutil.rmtree(private, ignore_errors=True)
