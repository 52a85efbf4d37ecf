"""tf_propo.train_jax (Keras' JAX backend, on the CPU here): the smoke config end to end, exact
resume, fine-tuning with the sliced term from another model, the result loaded by the
TensorFlow commands, and the flags it refuses."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import SAMPLES
from tests.test_train import SMOKE, last_json, straight_and_resumed, synthesize

pytest.importorskip("jax", reason="train_jax needs JAX (the test extra installs it)")


def train_jax(*args):
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    return subprocess.run([sys.executable, "-m", "tf_propo.train_jax", f"--flagfile={SMOKE}",
                           f"--targets={SAMPLES}", *args],
                          capture_output=True, text=True, timeout=600, env=env)


def state(model_dir):
    with np.load(os.path.join(model_dir, "state.npz")) as arrays:
        return {k: arrays[k] for k in arrays.files}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, normalized_weights):
    return straight_and_resumed(train_jax, tmp_path_factory.mktemp("jax_runs"))


def test_smoke_run_writes_a_compact_model_dir(runs):
    straight, _, results = runs
    record = results["straight"]
    assert record["step"] == 6 and record["backend"] == "cpu"
    assert len(record["stage_losses"]) == 2 and all(np.isfinite(record["stage_losses"]))
    names = set(os.listdir(straight))
    assert {"config.json", "flags.txt", "weights.npz", "state.npz", "metrics.jsonl",
            "previews"} <= names
    assert not any(n.startswith("ckpt-") for n in names)
    metrics = [json.loads(line) for line in open(straight / "metrics.jsonl")]
    assert [m["step"] for m in metrics] == [2, 4, 6]
    assert metrics[-1]["learning_rate"] == 0.0  # the linear decay reached its end
    # The final rate is the training steps' (as the last summary's), not diluted by the final
    # checkpoint and preview, which took 40 s of a 45 s probe on an H100.
    assert record["images_per_second"] > 0
    assert record["images_per_second"] == pytest.approx(metrics[-1]["images_per_second"],
                                                        abs=0.01)
    assert sorted(os.listdir(straight / "previews")) == ["step0000003.png", "step0000006.png"]


def test_resumed_run_equals_the_straight_run(runs):
    straight, resumed, results = runs
    assert results["first"]["step"] == 3 and results["second"]["step"] == 6
    assert "resuming" in results["second_stderr"] and "step 3/6" in results["second_stderr"]
    a, b = state(straight), state(resumed)
    assert a.keys() == b.keys() and len(a) > 10
    for key in a:  # same init, same batches (a function of seed and step), same updates
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_a_run_from_a_pack_equals_the_run_from_the_originals(runs, tmp_path):
    """tf_propo.pack's weights (float32 here, to compare exactly) and resized images are all
    a host without network needs: the same run from the pack alone ends where the straight
    run ends, and its model records the real weights source."""
    straight, _, _ = runs
    out = tmp_path / "pack"
    packed = subprocess.run([sys.executable, "-m", "tf_propo.pack", f"--flagfile={SMOKE}",
                             f"--targets={SAMPLES}", "--nofloat16", f"--out={out}"],
                            capture_output=True, text=True, timeout=300)
    assert packed.returncode == 0, packed.stderr
    run = tmp_path / "run"
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_PROPO_HOME": str(out / "home")}
    result = subprocess.run([sys.executable, "-m", "tf_propo.train_jax",
                             f"--flagfile={out / 'train.flags'}", f"--model_dir={run}"],
                            capture_output=True, text=True, timeout=600, env=env)
    assert last_json(result)["step"] == 6
    assert sorted(os.listdir(out / "home" / "weights")) == ["normalized.json",
                                                             "normalized.npz"]  # no fetch
    config = json.loads((run / "config.json").read_text())
    assert config["vgg_weights"] == "normalized" and config["targets"] == str(out / "targets")
    a, b = state(straight), state(run)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_tensorflow_loads_and_synthesises_with_the_jax_model(runs, tmp_path):
    from tf_propo import methods

    straight, _, _ = runs
    model, _ = methods.load_pseudo_optimizer(str(straight), "propo")
    trained = state(straight)
    kernel = model.stages[0].get_layer("relu1_1_in1").kernel.numpy()
    # float16 in the compact weights: equal to the float32 state up to that rounding.
    assert any(np.allclose(kernel, v, rtol=2e-3, atol=1e-4) for k, v in trained.items()
               if k.startswith("trainable/") and v.shape == kernel.shape)
    out = tmp_path / "t.png"
    record = last_json(synthesize("--method=propo", f"--model_dir={straight}", "--size=48",
                                  f"--out={out}"))
    assert out.exists() and len(record["stages"]) == 3


def test_fine_tuning_from_another_model_with_the_sliced_term(runs, tmp_path):
    straight, _, _ = runs
    out = tmp_path / "tuned"
    record = last_json(train_jax(f"--model_dir={out}", f"--init_from={straight}",
                                 "--sliced_weight=1000", "--steps=2"))
    assert record["step"] == 2
    config = json.loads((out / "config.json").read_text())
    assert config["init_from"] == str(straight)
    assert "--sliced_weight=1000.0" in (out / "flags.txt").read_text()
    metrics = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    sliced = [v for k, v in metrics.items() if k.startswith("sliced/")]
    assert len(sliced) == 4 and all(v > 0 for v in sliced)  # 2 stages x pixels, features


# A 2-stage total-gradient ProPO with fixed random weights on a fixed input, run on the
# backend of KERAS_BACKEND; saves the output images and stage 1's inputs.
TOTAL_FORWARD = """
import sys
import numpy as np
from keras import ops
from tests.conftest import vgg_shaped_random_weights
from tf_propo import po, texture, vgg, weights

encoder = weights.apply_weights(vgg.build_encoder(texture.TEXTURE_LAYERS),
                                vgg_shaped_random_weights())
model = po.ProgressiveOptimizer(encoder, stages=2, width=0.05, grad_mode="total")
rng = np.random.default_rng(0)
for net in model.networks.values():
    net.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in net.get_weights()])
pre = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
target = rng.random((1, 32, 32, 3)).astype(np.float32)
layers = model.all_layers
grams = texture.gram_matrices(model.features(target, layers), layers)
out = model({"pre": pre, "target_grams": grams})
_, grads = model._total_gradients(ops.sigmoid(pre), model.layer_sets[1], grams)
np.savez(sys.argv[1], image=ops.convert_to_numpy(out["images"][-1]),
         **{k: ops.convert_to_numpy(v) for k, v in grads.items()})
"""


def test_total_gradient_mode_is_the_same_on_jax_and_tensorflow(tmp_path):
    """grad_mode=total takes its inner gradient with jax.grad on JAX and a tape on
    TensorFlow: the same model and input give the same stage inputs and output."""
    root = os.path.dirname(SMOKE.rsplit("/", 1)[0])
    results = {}
    for backend in ("jax", "tensorflow"):
        path = tmp_path / f"{backend}.npz"
        done = subprocess.run([sys.executable, "-c", TOTAL_FORWARD, str(path)], cwd=root,
                              env={**os.environ, "KERAS_BACKEND": backend},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        with np.load(path) as arrays:
            results[backend] = {k: arrays[k] for k in arrays.files}
    jax_, tf_ = results["jax"], results["tensorflow"]
    assert set(jax_) == {"image", "relu1_1", "pool1"}
    for key in jax_:
        scale = np.abs(tf_[key]).max()
        assert scale > 0, key
        np.testing.assert_allclose(jax_[key], tf_[key], rtol=1e-3, atol=1e-4 * scale,
                                   err_msg=key)


def test_mixed_crop_sizes_train_and_count_every_image(tmp_path):
    """Mixed crop sizes, in the total-gradient mode (jax.grad inside the forward pass,
    backpropagated through) to train that mode too. The smoke config: 2 crops of 32² per
    step; mixed with 16², a 16² step holds 8."""
    from tf_propo import data

    plan = [data.step_crop(32, 2, [16, 32], 1, step) for step in range(4)]
    assert sorted(set(plan)) == [(16, 8), (32, 2)]  # seed 1 draws both in 4 steps
    out = tmp_path / "mixed"
    record = last_json(train_jax(f"--model_dir={out}", "--crop_sizes=16,32", "--steps=4",
                                 "--seed=1", "--summary_every=1", "--grad_mode=total"))
    assert record["step"] == 4 and all(np.isfinite(record["stage_losses"]))
    assert record["images"] == sum(count for _, count in plan) == 20
    config = json.load(open(out / "config.json"))
    assert config["crop_sizes"] == [16, 32] and config["grad_mode"] == "total"
    assert "--crop_sizes=16,32" in (out / "flags.txt").read_text()
    assert len(open(out / "metrics.jsonl").readlines()) == 4
    # Throughput counts the crops of steps 2-4 (the first compiles) at their own batch sizes
    # (8 + 2 + 8 here, not 3 steps x --batch_size=2).
    assert record["images_per_second"] * record["steady_seconds"] == pytest.approx(
        sum(count for _, count in plan[1:]), rel=0.1)


@pytest.mark.parametrize("flag, message", [
    ("--targets=tfds:dtd", "tfds"),
    ("--mode=decoders", "decoders"),
    ("--distribution=mirrored", "one device"),
    ("--crop_size=40", "multiple of 16"),
    ("--crop_sizes=32,40", "--crop_sizes: 40 is not a positive multiple of 16"),
    ("--crop_sizes=32,big", "--crop_sizes: 'big' is not a whole number"),
    ("--init_from=/nonexistent", "--init_from=/nonexistent: no such directory"),
])
def test_refused_flags_give_one_line_and_exit_2(tmp_path, flag, message):
    result = train_jax(f"--model_dir={tmp_path / 'run'}", flag)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
