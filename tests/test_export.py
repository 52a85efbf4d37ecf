"""Export: the SavedModel's signatures against the synthesis command and the Keras pipeline,
every TFLite variant against Keras under LiteRT, the LiteRT runner, and bad input."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import conftest
from tests.conftest import PROPO_CONFIG, SAMPLES
from tf_propo import image_io
from tf_propo.export.tflite import QUANTIZATIONS

TARGET = os.path.join(SAMPLES, "material_metall006.png")  # 256², so no resizing anywhere
CONFIG = PROPO_CONFIG


def make_model_dir(path, **overrides):
    return conftest.make_model_dir(path, {**CONFIG, **overrides})


def command(module, *args):
    result = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                            text=True, timeout=600)
    return result


def last_json(result):
    assert result.returncode == 0, result.stderr
    # Progress only: no line of TensorFlow's, the converter's or XNNPACK's own logging.
    native = [line for line in result.stderr.splitlines()
              if re.match(r"[IWEF]\d{4} |INFO: |WARNING: |.*XNNPACK|.*absl::", line)]
    assert not native, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, normalized_weights):
    return make_model_dir(tmp_path_factory.mktemp("export") / "propo")


@pytest.fixture(scope="module")
def pipeline(model_dir):
    from tf_propo.export import pipeline as pipelines

    return pipelines.load_pipeline(str(model_dir))[0]


@pytest.fixture(scope="module")
def saved_model(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("saved") / "model"
    record = last_json(command("tf_propo.export", f"--model_dir={model_dir}",
                               "--format=saved_model", f"--out={out}"))
    assert record["parity"]["image_relative_error"] < 1e-2
    return out


def test_serving_signature_reproduces_the_synthesis_command(saved_model, model_dir, tmp_path):
    png = tmp_path / "cli.png"
    last_json(command("tf_propo.synthesize", "--method=propo", f"--model_dir={model_dir}",
                      f"--target={TARGET}", "--size=64", "--seed=3", "--precision=float32",
                      f"--out={png}"))  # the export computes in float32
    from_cli = image_io.to_uint8(image_io.read_image(str(png))).astype(int)
    loaded = tf.saved_model.load(str(saved_model))
    target = image_io.to_uint8(image_io.read_image(TARGET))
    served = loaded.signatures["serving_default"](
        image=tf.constant(target), seed=tf.constant(3, tf.int64), size=tf.constant(64))
    served = served["texture"].numpy()
    assert served.dtype == np.uint8 and served.shape == (64, 64, 3)
    assert served.std() > 5  # a texture, not a flat image: the parity below means something
    difference = np.abs(served.astype(int) - from_cli)
    assert difference.max() <= 2 and difference.mean() < 0.1


def test_cached_statistics_give_the_same_texture(saved_model):
    loaded = tf.saved_model.load(str(saved_model))
    rng = np.random.default_rng(0)
    image = tf.constant(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8))
    seed, size = tf.constant(5, tf.int64), tf.constant(48)
    direct = loaded.signatures["serving_default"](image=image, seed=seed, size=size)["texture"]
    stats = loaded.signatures["statistics"](image=image)
    assert set(stats) == {"gram_relu1_1", "gram_pool1", "gram_pool2"}
    assert stats["gram_pool2"].shape == (128, 128)
    cached = loaded.signatures["from_statistics"](seed=seed, size=size, **stats)["texture"]
    np.testing.assert_array_equal(direct.numpy(), cached.numpy())
    # [height, width]: a wide texture, whose noise is the synthesize command's for that size
    wide = loaded.signatures["from_statistics"](seed=seed, size=tf.constant([32, 64]),
                                                **stats)["texture"]
    assert wide.shape == (32, 64, 3) and wide.numpy().std() > 5
    square = loaded.signatures["from_statistics"](seed=seed, size=tf.constant([48, 48]),
                                                  **stats)["texture"]
    np.testing.assert_array_equal(square.numpy(), cached.numpy())


@pytest.mark.parametrize("image_shape,size,message", [
    ((64, 64, 3), 40, "multiple of 16"),
    ((64, 64, 3), [32, 40], "multiple of 16"),
    ((64, 64, 3), [16, 16, 16], "one side or"),
    ((8, 64, 3), 32, ">= 16 px"),
])
def test_serving_rejects_bad_requests(saved_model, image_shape, size, message):
    loaded = tf.saved_model.load(str(saved_model))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["serving_default"](image=tf.zeros(image_shape, tf.uint8),
                                             seed=tf.constant(0, tf.int64),
                                             size=tf.constant(size))


def test_saved_model_cli_runs_the_serving_signature(saved_model, tmp_path):
    """No tensorflow-model-server binary can be installed here (no pip wheel, no network):
    TF's own saved_model_cli runs the signature the way TF Serving would load it."""
    inputs = {"image": np.full((40, 48, 3), 128, np.uint8), "seed": np.int64(1),
              "size": np.int32(32)}
    for name, value in inputs.items():
        np.save(tmp_path / f"{name}.npy", value)
    spec = ";".join(f"{k}={tmp_path / k}.npy" for k in inputs)
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run([cli, "run", "--dir", str(saved_model), "--tag_set", "serve",
                             "--signature_def", "serving_default", "--inputs", spec,
                             "--outdir", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    texture = np.load(tmp_path / "out" / "texture.npy")
    assert texture.shape == (32, 32, 3) and texture.dtype == np.uint8


@pytest.fixture(scope="module")
def tflite_exports(pipeline, tmp_path_factory):
    """{quantize: (path, file bytes)}: every variant converted once (64² output and target)
    from one SavedModel, in this process (the CLI's own path is test_litert_runner's), shared
    by the parity and file-size tests."""
    pytest.importorskip("ai_edge_litert")
    from tf_propo.export import tflite

    folder = tmp_path_factory.mktemp("tflite")
    # The export command's calibration: random crops of the bundled samples.
    representative = tflite.representative_dataset(
        tflite.calibration_targets(SAMPLES, 4, 64), 64, 64)
    exports = {}
    for quantize, content in tflite.convert_variants(pipeline, 64, 64, QUANTIZATIONS,
                                                     representative):
        out = folder / f"m_{quantize}.tflite"
        out.write_bytes(content)
        exports[quantize] = (out, len(content))
    return exports


@pytest.mark.parametrize("quantize", QUANTIZATIONS)
def test_tflite_variants_match_keras(quantize, tflite_exports, pipeline):
    from tf_propo import metrics
    from tf_propo.export import run as runner

    out, _ = tflite_exports[quantize]
    interpreter = runner.interpreter(str(out))
    assert runner.input_shapes(interpreter) == {"target": [1, 64, 64, 3],
                                                "noise": [1, 64, 64, 3]}
    target = runner.square_target(image_io.read_image(TARGET), 64)[None].astype(np.float32)
    noise = runner.noise(7, 64)
    exported = runner.run(interpreter, target, noise)
    reference = pipeline({"target": target, "noise": noise}, resize=False).numpy()
    assert reference.std() > 0.02
    error = np.linalg.norm(exported - reference) / np.linalg.norm(reference)
    if quantize in ("none", "fp16"):
        assert error < (1e-4 if quantize == "none" else 1e-2)
    elif quantize in ("int8_weights", "int8_mixed"):
        # Float compute on int8 weights: the image moves (5.5% here), its texture loss not.
        evaluation = metrics.TextureMetrics(target[0])
        ratio = evaluation.texture_loss(exported) / evaluation.texture_loss(reference)
        assert error < 0.15 and 0.9 < ratio[0] < 1.1, (error, ratio)
    else:
        # The goal is a texture loss within 5% of Keras'; on the bundled model over 78
        # samples (benchmarks/export_parity) full int8 is 93x and dynamic 1.25x (README). What
        # holds here: a texture of the right statistics' order, not garbage.
        assert np.isfinite(exported).all() and 0 <= exported.min() and exported.max() <= 1
        evaluation = metrics.TextureMetrics(target[0])
        ratio = evaluation.texture_loss(exported) / evaluation.texture_loss(reference)
        assert 0.5 < ratio[0] < 3, ratio


def test_parity_benchmark_finds_fp16_exact_on_its_rounded_weights(model_dir, tmp_path):
    """tf_propo.benchmarks.export_parity on a tiny run: the fp16 .tflite is Keras computing
    with the same float16-rounded weights (whatever the model's own sensitivity to the
    rounding), and every comparison row is there."""
    pytest.importorskip("ai_edge_litert")
    rows = last_json(command("tf_propo.benchmarks.export_parity", f"--model_dir={model_dir}",
                             f"--targets={TARGET}", "--size=32", "--seeds=2",
                             "--quantizations=fp16"))
    by_name = {r["variant"]: r for r in rows}
    assert set(by_name) == {"fp16", "keras, noise moved", "keras, fp16-rounded weights",
                            "fp16 vs keras on its weights"}
    assert all(r["samples"] == 2 for r in rows)
    assert by_name["fp16 vs keras on its weights"]["max_image_error"] < 1e-3
    assert by_name["fp16"]["bytes"] > 0
    for row in rows:
        assert row["loss_ratio_low"] <= row["geomean_loss_ratio"] <= row["loss_ratio_high"]


def test_parity_warning_only_for_a_much_worse_texture():
    from tf_propo.export.parity import warning as parity_warning

    assert parity_warning({"texture_loss_ratio": 1.08}, "fp16") is None
    assert parity_warning({"texture_loss_ratio": 0.5}, "dynamic") is None  # lower is fine
    assert parity_warning({}, "int8") is None  # --noverify
    line = parity_warning({"texture_loss_ratio": 105.2}, "int8")
    assert line.startswith("warning:") and "105x" in line and "--quantize=int8_mixed" in line
    assert "\n" not in line
    assert "int8_mixed" not in parity_warning({"texture_loss_ratio": 2.0}, "fp16")


def test_quantized_files_are_smaller(tflite_exports):
    sizes = {quantize: size for quantize, (_, size) in tflite_exports.items()}
    # The VGG weights dominate: fp16 halves them; int8 quarters them (biases stay float32).
    assert sizes["fp16"] < 0.6 * sizes["none"]
    for quantize in ("int8", "dynamic", "int8_weights", "int8_mixed"):
        assert sizes[quantize] < 0.5 * sizes["none"], sizes


def test_int8_mixed_computes_vgg_in_int8_and_the_stages_in_float(tflite_exports):
    """int8_weights feeds every quantized weight through a DEQUANTIZE op (float compute);
    int8_mixed hands VGG's convolutions their int8 weights directly (the runtime's int8
    kernels), and only those: the stage networks' convolutions keep float compute."""
    import re

    from tf_propo.export import run as runner

    vgg_conv = re.compile(r"/conv\d_\d_")  # VGG's layers; a stage's are ".../..._conv1_1"

    def float_compute_convs(quantize):
        """Output names of the convolutions fed by a DEQUANTIZE op."""
        interpreter = runner.interpreter(str(tflite_exports[quantize][0]))
        ops = interpreter._get_ops_details()  # the public API has no op list
        names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
        dequantized = {op["outputs"][0] for op in ops if op["op_name"] == "DEQUANTIZE"}
        return [names[op["outputs"][0]] for op in ops if op["op_name"] == "CONV_2D"
                and dequantized & set(op["inputs"])]

    weight_only, mixed = float_compute_convs("int8_weights"), float_compute_convs("int8_mixed")
    assert any(vgg_conv.search(n) for n in weight_only)
    assert not any(vgg_conv.search(n) for n in mixed), mixed
    assert sum("stage" in n for n in mixed) == sum("stage" in n for n in weight_only) > 0


@pytest.fixture(scope="module")
def cli_tflite(model_dir, tmp_path_factory):
    """The command's float32 LiteRT export at 32² and its JSON record."""
    pytest.importorskip("ai_edge_litert")
    model = tmp_path_factory.mktemp("cli") / "m.tflite"
    return model, last_json(command("tf_propo.export", f"--model_dir={model_dir}",
                                    "--format=tflite", "--size=32", "--target_size=32",
                                    f"--out={model}"))


def test_litert_runner_writes_the_texture(cli_tflite, pipeline, tmp_path):
    from tf_propo.export import run as runner

    model, exported = cli_tflite
    assert exported["bytes"] == os.path.getsize(model) and exported["quantize"] == "none"
    assert exported["parity"]["image_relative_error"] < 1e-4
    assert exported["parity"]["texture_loss_ratio"] == pytest.approx(1, abs=1e-3)
    png = tmp_path / "o.png"
    record = last_json(command("tf_propo.export.run", f"--model={model}", f"--target={TARGET}",
                               "--seed=4", f"--out={png}"))
    assert record["size"] == 32 and record["target_size"] == 32
    written = image_io.read_image(str(png))
    target = runner.square_target(image_io.read_image(TARGET), 32)[None].astype(np.float32)
    expected = pipeline({"target": target, "noise": runner.noise(4, 32)}, resize=False)[0]
    assert np.abs(written - expected.numpy()).max() <= 1 / 255 + 1e-6


def test_the_api_exports_what_the_command_exports(model_dir, cli_tflite, tmp_path):
    """TextureSynthesizer.export runs the command's export (checked, float32 whatever the
    synthesizer's precision); what cannot export raises a ValueError naming why."""
    import tf_propo

    synth = tf_propo.TextureSynthesizer.load(str(model_dir), target_size=32,
                                             precision="mixed_bfloat16")
    out = tmp_path / "api.tflite"
    result = synth.export(str(out), "tflite", size=32)
    assert result["bytes"] == os.path.getsize(out) and result["size"] == 32
    assert result["parity"]["image_relative_error"] < 1e-4
    cli, from_cli = cli_tflite
    assert from_cli["parity"] == pytest.approx(result["parity"], rel=1e-6)
    assert abs(os.path.getsize(cli) - result["bytes"]) < 0.01 * result["bytes"]
    with pytest.raises(ValueError, match="out=.* already exists"):
        synth.export(str(tmp_path))
    with pytest.raises(ValueError, match="size=40 must be a multiple of 16"):
        synth.export(str(tmp_path / "b.tflite"), "tflite", size=40)
    with pytest.raises(ValueError, match="only quilting and a pseudo optimizer.*gatys"):
        tf_propo.TextureSynthesizer.from_preset("gatys").export(str(tmp_path / "q"))
    assert sorted(os.listdir(tmp_path)) == ["api.tflite"]


def test_bad_export_input(model_dir, tmp_path, normalized_weights):
    empty = tmp_path / "empty"
    empty.mkdir()
    from tf_propo import model_dir as model_dirs

    model_dirs.save_config(str(empty), CONFIG)
    total = make_model_dir(tmp_path / "total", grad_mode="total")
    existing = tmp_path / "exists"
    existing.mkdir()
    cases = [
        ([f"--model_dir={empty}", f"--out={tmp_path / 'a'}"], "no checkpoint"),
        ([f"--model_dir={tmp_path / 'nope'}", f"--out={tmp_path / 'b'}"], "no such directory"),
        ([f"--model_dir={model_dir}", "--format=onnx", f"--out={tmp_path / 'c'}"], "format"),
        ([f"--model_dir={model_dir}", "--format=tflite", "--quantize=int4",
          f"--out={tmp_path / 'd.tflite'}"], "quantize"),
        ([f"--model_dir={model_dir}", f"--out={existing}"], "already exists"),
        ([f"--model_dir={model_dir}", "--format=tflite", f"--out={tmp_path / 'e.bin'}"],
         ".tflite"),
        ([f"--model_dir={model_dir}", "--format=tflite", "--size=50",
          f"--out={tmp_path / 'f.tflite'}"], "multiple of 16"),
        ([f"--model_dir={total}", f"--out={tmp_path / 'g'}"], "grad_mode"),
        ([f"--model_dir={model_dir}", "--size=100000", f"--out={tmp_path / 'h'}"], "size"),
        ([f"--model_dir={model_dir}", "--quantize=fp16", f"--out={tmp_path / 'j'}"],
         "--quantize=fp16 applies to the tflite format only"),
        ([f"--model_dir={model_dir}", "--format=tflite", "--size=8192", "--target_size=8192",
          f"--out={tmp_path / 'i.tflite'}"], "Mpx of images need"),
    ]
    for args, message in cases:
        before = sorted(os.listdir(tmp_path))
        result = command("tf_propo.export", *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)
        assert sorted(os.listdir(tmp_path)) == before


def test_bad_runner_input(tmp_path):
    (tmp_path / "junk.tflite").write_bytes(b"not a flatbuffer" * 10)
    cases = [
        ([f"--model={tmp_path / 'missing.tflite'}"], "no such file"),
        ([f"--model={tmp_path / 'junk.tflite'}"], "not a tf_propo LiteRT model"),
        ([], "--model is required"),
    ]
    for args, message in cases:
        result = command("tf_propo.export.run", *args, f"--out={tmp_path / 'o.png'}")
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)
        assert not (tmp_path / "o.png").exists()


def test_compact_export_round_trip(model_dir, pipeline, tmp_path):
    """config + float16 weights: a model directory without checkpoints that synthesises like
    the original up to float16 rounding (of its networks and of its VGG encoder's weights: a
    float16 model), and refuses tampered weights."""
    from tf_propo import model_dir as model_dirs

    out = tmp_path / "compact"
    record = last_json(command("tf_propo.export", f"--model_dir={model_dir}",
                               "--format=compact", f"--out={out}"))
    assert sorted(os.listdir(out)) == ["config.json", "weights.npz"]
    assert record["bytes"] == os.path.getsize(out / "weights.npz")
    config = model_dirs.load_config(str(out))
    assert len(config["weights_sha256"]) == 64
    compact = model_dirs.build_model(config)
    model_dirs.restore(str(out), compact)
    for name, net in pipeline.optimizer_model.networks.items():
        for a, b in zip(net.get_weights(), compact.networks[name].get_weights()):
            np.testing.assert_allclose(b, a.astype(np.float16).astype(np.float32))
    assert config[model_dirs.FLOAT16_ENCODER] is True
    original = pipeline.optimizer_model.encoder.get_weights()
    rounded = compact.encoder.get_weights()
    assert len(original) == len(rounded) > 0
    for a, b in zip(original, rounded):
        np.testing.assert_array_equal(b, a.astype(np.float16).astype(np.float32))
    assert any((a != b).any() for a, b in zip(original, rounded))
    data = bytearray((out / "weights.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / "weights.npz").write_bytes(bytes(data))
    result = command("tf_propo.synthesize", "--method=propo", f"--model_dir={out}",
                     "--size=32", f"--out={tmp_path / 'o.png'}")
    assert result.returncode == 2 and "corrupt weights" in result.stderr
    assert not (tmp_path / "o.png").exists()


def test_the_cli_offers_exactly_the_quantizations_tflite_makes():
    # export.write keeps its own tuple so that checking flags needs no TensorFlow.
    from tf_propo.export import tflite, write

    assert write.QUANTIZATIONS == tflite.QUANTIZATIONS
