"""--distribution: TF_CONFIG checks, and mirrored / multi-worker training on this CPU (two
logical CPUs, and two worker processes on localhost), each against the one-device run."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import SAMPLES
from tests.test_train import LAUNCH, SMOKE, checkpoint_values, last_json, train
from tf_propo import distribute
from tf_propo.errors import UsageError


def tf_config(cluster, kind, index):
    return json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})


@pytest.mark.parametrize("cluster,kind,index,chief", [
    ({"worker": ["a:1", "b:1"]}, "worker", 0, True),
    ({"worker": ["a:1", "b:1"]}, "worker", 1, False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, "chief", 0, True),
    ({"chief": ["c:1"], "worker": ["a:1"]}, "worker", 0, False),
])
def test_cluster_task_and_chief(cluster, kind, index, chief):
    assert distribute.cluster_task(tf_config(cluster, kind, index)) == (cluster, kind, index)
    assert distribute.is_chief(cluster, kind, index) is chief


@pytest.mark.parametrize("value,message", [
    (None, "needs TF_CONFIG"),
    ("", "needs TF_CONFIG"),
    ("{not json", "not JSON"),
    ("[1, 2]", "no cluster"),
    ('{"task": {"type": "worker", "index": 0}}', "no cluster"),
    ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}',
     "not a list of host:port"),
    ('{"cluster": {"worker": ["a:1"]}}', "no task"),
    (tf_config({"worker": ["a:1"]}, "ps", 0), "task type 'ps'"),
    (tf_config({"worker": ["a:1"]}, "chief", 0), "task type 'chief'"),
    (tf_config({"worker": ["a:1", "b:1"]}, "worker", 2), "not in 0..1"),
    (tf_config({"worker": ["a:1"]}, "worker", "0"), "task index '0'"),
    (tf_config({"worker": ["a:1"]}, "worker", True), "task index True"),
])
def test_bad_tf_config(value, message):
    with pytest.raises(UsageError, match=message):
        distribute.cluster_task(value)


def test_bad_tf_config_fails_the_command_in_one_line(tmp_path):
    """Checked before TensorFlow's import and the strategy's constructor (which raised a
    traceback on these): one stderr line, exit 2, no model_dir."""
    for value in ("{not json", tf_config({"worker": ["localhost:1"]}, "worker", 3)):
        result = subprocess.run(
            [sys.executable, "-m", "tf_propo.train", f"--flagfile={SMOKE}",
             f"--targets={SAMPLES}", f"--model_dir={tmp_path / 'run'}",
             "--distribution=multi_worker"], env={**os.environ, "TF_CONFIG": value},
            capture_output=True, text=True, timeout=120)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and "TF_CONFIG" in lines[0], \
            result.stderr
        assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def one_device(tmp_path_factory, normalized_weights):
    run = tmp_path_factory.mktemp("one_device") / "run"
    record = last_json(train(f"--model_dir={run}"))
    assert record["replicas"] == 1
    return run


def assert_same_training(reference, other):
    """Every saved variable (networks and Adam's moments) equal up to float reduction order.
    A replica's gradient left out, or summed instead of averaged, moves the moments far more
    (Adam's step itself barely sees a gradient's scale)."""
    a, b = checkpoint_values(reference), checkpoint_values(other)
    assert a.keys() == b.keys() and len(a) > 100
    assert b["step/.ATTRIBUTES/VARIABLE_VALUE"] == 6
    for key in a:
        scale = np.max(np.abs(a[key]))
        assert np.max(np.abs(a[key] - b[key])) <= 2e-3 * scale, key


def test_mirrored_over_two_logical_cpus_trains_as_one_device(one_device, tmp_path):
    run = tmp_path / "mirrored"
    result = subprocess.run(
        [sys.executable, LAUNCH, "--logical_cpus=2", "tf_propo.train", f"--flagfile={SMOKE}",
         f"--targets={SAMPLES}", f"--model_dir={run}", "--distribution=mirrored"],
        capture_output=True, text=True, timeout=600)
    record = last_json(result)
    assert record["replicas"] == 2 and record["step"] == 6
    assert_same_training(one_device, run)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_workers(cluster, model_dir, scratch, *args):
    """Both workers of `cluster` (localhost) on one model_dir; [(pid, result)] by index."""
    workers = []
    for index in range(len(cluster["worker"])):
        env = {**os.environ, "TF_CONFIG": tf_config(cluster, "worker", index),
               "TMPDIR": str(scratch)}
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "tf_propo.train", f"--flagfile={SMOKE}",
             f"--targets={SAMPLES}", f"--model_dir={model_dir}", "--distribution=multi_worker",
             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=600)
            results.append((worker.pid, subprocess.CompletedProcess(
                worker.args, worker.returncode, stdout, stderr)))
    finally:
        for worker in workers:
            worker.kill()
    return results


def test_multi_worker_trains_as_one_device_and_only_the_chief_writes(one_device, tmp_path):
    """Two workers from TF_CONFIG on localhost, interrupted after step 3 and resumed: they end
    where the one-device run ends; the model_dir holds the chief's files alone (its
    TensorBoard events, one file per run), and the other worker's private checkpoints are
    gone."""
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    run, scratch = tmp_path / "cluster", tmp_path / "scratch"
    scratch.mkdir()
    chiefs = []
    for args, steps in ((["--run_steps=3"], 3), ([], 6)):
        results = run_workers(cluster, run, scratch, *args)
        for _, result in results:
            record = last_json(result)
            assert record["step"] == steps and record["replicas"] == 2
        chiefs.append(str(results[0][0]))
    assert "resuming" in results[1][1].stderr  # the non-chief resumed from the chief's files
    assert_same_training(one_device, run)
    writers = {name.split(".")[-3] for name in os.listdir(run / "train")}
    assert writers == set(chiefs)
    assert os.listdir(scratch) == []


def test_a_cluster_that_never_comes_up_ends_after_cluster_timeout(tmp_path):
    """Worker 1 of a cluster whose worker 0 never starts: TensorFlow would wait for ever,
    deaf to Ctrl-C and SIGTERM; the watchdog ends it with one line and nothing written."""
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "tf_propo.train", f"--flagfile={SMOKE}", f"--targets={SAMPLES}",
         f"--model_dir={run}", "--distribution=multi_worker", "--cluster_timeout=3"],
        env={**os.environ, "TF_CONFIG": tf_config(cluster, "worker", 1)},
        capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == -9, result.stderr
    assert lines[0].startswith("multi_worker: worker 1 of 2 tasks: waiting"), result.stderr
    assert lines[-1].startswith("error: the cluster of TF_CONFIG (2 tasks) did not come up "
                                "within 3 s"), result.stderr
    assert not run.exists()


def test_ctrl_c_ends_the_wait_for_the_cluster(tmp_path):
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    worker = subprocess.Popen(
        [sys.executable, "-m", "tf_propo.train", f"--flagfile={SMOKE}", f"--targets={SAMPLES}",
         f"--model_dir={tmp_path / 'run'}", "--distribution=multi_worker"],
        env={**os.environ, "TF_CONFIG": tf_config(cluster, "worker", 0)},
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    try:
        assert "waiting for every host" in worker.stderr.readline()
        time.sleep(2)  # well inside TensorFlow's wait
        worker.send_signal(signal.SIGINT)
        assert worker.wait(timeout=30) == -signal.SIGINT
    finally:
        worker.kill()
        worker.stderr.close()
    assert not (tmp_path / "run").exists()
