"""The training app's tf.distribute strategies, and which process of a cluster writes the run.

Every worker of a MultiWorkerMirroredStrategy runs the same program on the same --model_dir.
Only the chief may write there (config, checkpoints, summaries): two writers race on the
checkpoint files and leave a second set of TensorBoard events. The other workers still save
their checkpoints, as TF's multi-worker guide asks (a save may take part in collective ops),
but into a private temporary directory that is deleted when the run ends; every worker
resumes from the chief's checkpoints.

The strategy's constructor waits inside TensorFlow's C++ runtime until every worker of the
cluster is up, with no time limit, holding Python's lock, and neither Ctrl-C nor SIGTERM ends
it there (Python's handlers wait for the call to return; TensorFlow's coordination service
catches SIGTERM). A mistyped address would hang a worker silently for ever, so the wait says
what it waits for, Ctrl-C ends it, and a watchdog process ends it after --cluster_timeout
(cluster_watch).
"""

import contextlib
import json
import os
import shutil
import signal
import sys
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


def make_strategy(name, task=None, timeout=600.0):
    """(strategy, chief) for --distribution=name; chief: whether this process writes the run.
    multi_worker needs `task`, cluster_task's reading of TF_CONFIG, and waits up to `timeout`
    seconds (0: no limit) for the cluster to come up."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy(), True
    if name == "multi_worker":
        cluster, kind, index = task
        chief = is_chief(cluster, kind, index)
        tasks = sum(len(cluster[k]) for k in TASK_TYPES if k in cluster)
        sys.stderr.write(f"multi_worker: {kind} {index} of {tasks} tasks"
                         f"{' (chief)' if chief else ''}: waiting for every host of TF_CONFIG "
                         "to run this command\n")
        give_up = (f"error: the cluster of TF_CONFIG ({tasks} tasks) did not come up within "
                   f"{timeout:g} s: is every host in it running this command, at that "
                   "address? (--cluster_timeout)")
        try:
            with cluster_watch(timeout, give_up):
                return tf.distribute.MultiWorkerMirroredStrategy(), chief
        except ValueError as e:
            raise UsageError(f"TF_CONFIG: {str(e).splitlines()[0]}") from None
    if name != "default":
        raise ValueError(f"unknown strategy {name!r}")
    return tf.distribute.get_strategy(), True


# The watchdog: a second process, since the waiting one holds Python's lock inside TensorFlow,
# so no thread of it can run. It ends at EOF on stdin (the wait is over, or its parent died)
# and ignores Ctrl-C, which reaches its parent directly.
_WATCHDOG = """
import os, select, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
parent, timeout, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
if not select.select([sys.stdin], [], [], timeout)[0]:
    sys.stderr.write(message + "\\n")
    sys.stderr.flush()
    os.kill(parent, signal.SIGKILL)
"""


@contextlib.contextmanager
def cluster_watch(timeout, message):
    """While the body waits for the cluster: Ctrl-C ends the process at once (the default
    action, not Python's handler, which cannot run until TensorFlow returns), and after
    `timeout` seconds (0: never) a watchdog writes `message` on stderr and kills it."""
    import subprocess

    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()),
                                 str(timeout), message],
                                stdin=subprocess.PIPE) if timeout else None
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.default_int_handler:  # not where SIGINT is ignored (nohup, &)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if watchdog:
            watchdog.stdin.close()
            watchdog.wait()


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
