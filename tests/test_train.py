"""The training app end to end: the smoke config, resuming, synthesis from the checkpoint,
and bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import SAMPLES

ROOT = os.path.dirname(SAMPLES.rstrip("/").rsplit("/", 1)[0])
SMOKE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                     "smoke.flags")
LAUNCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launch.py")


def train(*args):
    return subprocess.run([sys.executable, "-m", "tf_propo.train", f"--flagfile={SMOKE}",
                           f"--targets={SAMPLES}", *args],
                          capture_output=True, text=True, timeout=600)


def synthesize(*args):
    return subprocess.run([sys.executable, "-m", "tf_propo.synthesize", *args],
                          capture_output=True, text=True, timeout=600)


def last_json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def checkpoint_values(model_dir):
    """Every saved variable: stage weights, Adam slots, step (keys follow the object graph)."""
    reader = tf.train.load_checkpoint(model_dir)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.endswith("VARIABLE_VALUE") and not k.startswith("save_counter")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, normalized_weights):
    return straight_and_resumed(train, tmp_path_factory.mktemp("runs"))


def straight_and_resumed(run, root):
    """The smoke run straight through, and the same run interrupted after step 3 and resumed:
    (straight dir, resumed dir, {straight, first, second: JSON lines; second_stderr})."""
    straight, resumed = root / "straight", root / "resumed"
    results = {"straight": last_json(run(f"--model_dir={straight}"))}
    results["first"] = last_json(run(f"--model_dir={resumed}", "--run_steps=3"))
    second = run(f"--model_dir={resumed}")
    results["second"] = last_json(second)
    results["second_stderr"] = second.stderr
    return straight, resumed, results


def test_smoke_run_writes_a_complete_model_dir(trained):
    straight, _, results = trained
    assert results["straight"]["step"] == 6
    names = set(os.listdir(straight))
    assert {"config.json", "flags.txt", "checkpoint", "train"} <= names
    assert any(n.startswith("ckpt-6") for n in names)
    assert os.listdir(straight / "train")  # TensorBoard events
    flags_text = (straight / "flags.txt").read_text()
    assert "--mode=propo" in flags_text and "--stages=2" in flags_text
    config = json.loads((straight / "config.json").read_text())
    assert config["stages"] == 2 and config["mode"] == "propo"


def test_resume_continues_step_schedule_and_data(trained):
    straight, resumed, results = trained
    assert results["first"]["step"] == 3
    assert "resuming" in results["second_stderr"] and "step 3/6" in results["second_stderr"]
    assert results["second"]["step"] == 6
    # Same step count, LR schedule and data order: the interrupted run ends where the
    # uninterrupted one does.
    a, b = checkpoint_values(straight), checkpoint_values(resumed)
    assert a.keys() == b.keys() and len(a) > 100
    assert a["step/.ATTRIBUTES/VARIABLE_VALUE"] == 6
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_synthesis_from_the_checkpoint(trained, tmp_path):
    straight, _, _ = trained
    out = tmp_path / "p.png"
    record = last_json(synthesize("--method=propo", f"--model_dir={straight}", "--size=32",
                                  "--samples=2", "--save_stages", f"--out={out}"))
    assert record["method"] == "propo" and len(record["stages"]) == 3
    assert os.path.exists(out) and os.path.exists(record["stages_out"])
    for key in ("seconds", "texture_loss", "noise_texture_loss", "size", "out"):
        assert key in record


@pytest.mark.parametrize("args,message", [
    (["--stages=0"], "stages"),
    (["--crop_size=512"], "larger than"),
    (["--targets=/nonexistent"], "no such file or folder"),
    (["--layers=relu1_1,conv9_9"], "unknown VGG19 layer"),
    (["--crop_sizes=16,32", "--targets=tfds:dtd"], "not tfds"),
    (["--crop_sizes=16,32", "--distribution=mirrored"], "one device"),
    # --holdout leaves images of a folder out; elsewhere it would silently hold out nothing.
    (["--holdout=5", f"--targets={os.path.join(SAMPLES, 'nature_potatoes.png')}"],
     "is one image"),
    (["--holdout=5", "--targets=tfds:dtd"], "train split"),
])
def test_bad_training_input(tmp_path, args, message):
    result = train(f"--model_dir={tmp_path / 'run'}", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "run").exists()


def test_training_on_a_tfds_dataset_by_name(tmp_path, normalized_weights):
    """--targets=tfds:NAME end to end, the dataset mocked (tfds.testing.mock_data: random
    images, no download): the run trains, records the name, and resumes."""
    run = tmp_path / "tfds"

    def launch(*args):
        return subprocess.run([sys.executable, LAUNCH, "--mock_tfds=8", "tf_propo.train",
                               f"--flagfile={SMOKE}", "--targets=tfds:dtd",
                               f"--model_dir={run}", *args],
                              capture_output=True, text=True, timeout=600)

    first = last_json(launch("--run_steps=3"))
    assert first["step"] == 3 and all(np.isfinite(first["stage_losses"]))
    second = launch()
    assert last_json(second)["step"] == 6 and "resuming" in second.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["targets"] == "tfds:dtd" and "held_out" not in config


def test_mixed_crop_sizes_train_on_the_batches_train_jax_sees(tmp_path):
    from tf_propo import data

    # Smoke: 2 crops of 32² per step; with 16² mixed in, a 16² step holds 8 (seed 1: 32, 16,
    # 32, 16). The batches are data.numpy_batch's, as in train_jax. In the total-gradient
    # mode (a gradient inside the forward pass, backpropagated through) to train it too.
    plan = [data.step_crop(32, 2, [16, 32], 1, step) for step in range(4)]
    assert plan == [(32, 2), (16, 8), (32, 2), (16, 8)]
    out = tmp_path / "mixed"
    record = last_json(train(f"--model_dir={out}", "--crop_sizes=16,32", "--steps=4",
                             "--seed=1", "--grad_mode=total"))
    assert record["step"] == 4 and all(np.isfinite(record["stage_losses"]))
    assert record["batch_size"] == 6.0  # crops per timed step (steps 2-4: 8, 2, 8)
    assert record["images"] == 20  # every step's crops, the untimed first included
    config = json.load(open(out / "config.json"))
    assert config["crop_sizes"] == [16, 32] and config["grad_mode"] == "total"
    [dataset_batch] = list(data.mixed_crop_dataset(SAMPLES, 32, 2, [16, 32], seed=1, resize=64,
                                                   start_step=1).take(1))
    numpy = data.numpy_batch(data.local_training_images(SAMPLES, 32, 64), 16, 8, 1, 1)
    np.testing.assert_array_equal(dataset_batch["target"].numpy(), numpy["target"])


def test_empty_folder_and_other_mode(tmp_path, trained):
    straight, _, _ = trained
    (tmp_path / "empty").mkdir()
    result = train(f"--model_dir={tmp_path / 'run'}", f"--targets={tmp_path / 'empty'}")
    assert result.returncode == 2 and "no " in result.stderr
    before = sorted(os.listdir(straight))
    result = train(f"--model_dir={straight}", "--mode=adapo")
    assert result.returncode == 2 and "holds a model with mode=propo" in result.stderr
    assert sorted(os.listdir(straight)) == before


def test_bad_model_dirs_for_synthesis(tmp_path, trained):
    straight, _, _ = trained
    out = tmp_path / "o.png"
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "config.json").write_text("{not json")
    cases = [
        (["--method=adapo", f"--model_dir={straight}"], "holds a propo model"),
        (["--method=adapo"], "needs --model_dir"),  # propo alone: the bundled model
        (["--method=propo", f"--model_dir={tmp_path / 'nope'}"], "no such directory"),
        (["--method=propo", f"--model_dir={tmp_path / 'corrupt'}"], "corrupt model"),
        (["--method=propo", f"--model_dir={straight}", "--size=40"], "multiples of 16"),
    ]
    for args, message in cases:
        size = [] if any(a.startswith("--size") for a in args) else ["--size=32"]
        result = synthesize(*args, *size, f"--out={out}")
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)
        assert not out.exists()


def test_sliced_terms_are_trained_and_summarised(tmp_path, normalized_weights):
    """--sliced_weight and --logit_sliced_weight add the per-stage sliced terms (TensorBoard
    scalars) to the loss, each with its own weight."""
    run = tmp_path / "sliced"
    plain = last_json(train(f"--model_dir={tmp_path / 'plain'}", "--steps=1"))
    record = last_json(train(f"--model_dir={run}", "--steps=1", "--sliced_weight=1e6",
                             "--logit_sliced_weight=1e3"))
    assert record["stage_losses"] == pytest.approx(plain["stage_losses"], rel=1e-4)
    events = [os.path.join(run / "train", f) for f in os.listdir(run / "train")]
    tags = {v.tag: tf.make_ndarray(v.tensor) for path in events
            for event in tf.compat.v1.train.summary_iterator(path) for v in event.summary.value}
    sliced = {k: float(v) for k, v in tags.items() if k.startswith("sliced/")}
    assert set(sliced) == {f"sliced/stage{s}/{k}" for s in (0, 1)
                           for k in ("pixels", "features", "logits")}
    assert all(v > 0 for v in sliced.values())
    weight = {"pixels": 1e6, "features": 1e6, "logits": 1e3}
    expected = sum(plain["stage_losses"]) + sum(
        weight[k.rsplit("/", 1)[1]] * v for k, v in sliced.items())
    assert float(tags["loss/total"]) == pytest.approx(expected, rel=1e-3)


def test_init_from_starts_from_another_models_networks(trained, tmp_path):
    """--init_from restores the networks (here trained with a learning rate of 0, so they
    must come out unchanged) and records the origin; a model of another shape is refused."""
    straight, _, _ = trained
    tuned = tmp_path / "tuned"
    result = train(f"--model_dir={tuned}", f"--init_from={straight}", "--steps=1",
                   "--learning_rate=0", "--sliced_weight=1")
    assert last_json(result)["step"] == 1 and "starting from" in result.stderr
    assert json.loads((tuned / "config.json").read_text())["init_from"] == str(straight)
    a, b = checkpoint_values(straight), checkpoint_values(tuned)
    # The networks' weights are saved once, under the optimizer's tracked variables.
    weights = [k for k in a if k.startswith("optimizer/_trainable_variables/")]
    assert len(weights) > 50 and set(weights) <= set(b)
    for key in weights:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)

    other = train(f"--model_dir={tmp_path / 'wide'}", f"--init_from={straight}", "--width=0.5")
    lines = other.stderr.strip().splitlines()
    assert other.returncode == 2 and len(lines) == 1, other.stderr
    assert f"--init_from={straight} holds a model with width=" in lines[0]
    assert not (tmp_path / "wide").exists()

    missing = train(f"--model_dir={tmp_path / 'none'}", "--init_from=/nonexistent")
    lines = missing.stderr.strip().splitlines()
    assert missing.returncode == 2 and len(lines) == 1, missing.stderr
    assert "--init_from=/nonexistent: no such directory" in lines[0]
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("name,steps", [("demo", 4000), ("paper", 800000), ("smoke", 6),
                                        ("gpu", 20000), ("one_texture", 300),
                                        ("gpu_mixed", 6000)])
def test_config_flagfiles_parse(name, steps):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import tf_propo.train as t; from absl import flags; "
            f"flags.FLAGS(['x', '--flagfile=configs/{name}.flags']); "
            "print(t.total_steps(), t.model_config()['stages'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=root, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(steps), "5" if name != "smoke" else "2"]


def test_one_texture_config_fine_tunes_the_bundled_model(tmp_path, normalized_weights):
    """configs/one_texture.flags names the bundled ProPO as --init_from: its model shape must
    stay the bundled one's, or the recipe in the README fails at once. Checked as the command
    starts a run (the same checks and restore, without tracing a training step)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import sys, tf_propo.train as t; from absl import flags; "
            "from tf_propo import model_dir as m; "
            "flags.FLAGS(['x', '--flagfile=configs/one_texture.flags']); "
            "c = t.model_config(); m.check_start(sys.argv[1], c, flags.FLAGS.init_from); "
            "print(c['init_from']); print(m.restore(flags.FLAGS.init_from, m.build_model(c)))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "mine")],
                            capture_output=True, text=True, cwd=root, timeout=300)
    assert result.returncode == 0, result.stderr
    origin, restored = result.stdout.strip().splitlines()[-2:]
    assert origin == os.path.join(root, "tf_propo", "pretrained", "propo")
    assert "pretrained/propo" in restored
