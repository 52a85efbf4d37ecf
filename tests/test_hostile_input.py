"""Inputs a careless or hostile user gives the apps: one stderr line and exit code 2, nothing
written and no user file touched; an unexpected error is one line and exit code 1."""

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import SAMPLES


def app(module, *args, cwd=None):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def one_error_line(result, code=2):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize("module", ["tf_propo.synthesize", "tf_propo.evaluate",
                                    "tf_propo.train", "tf_propo.export.run"])
@pytest.mark.parametrize("seed", ["-1", str(2**70)])
def test_seeds_out_of_range(tmp_path, module, seed):
    line = one_error_line(app(module, f"--seed={seed}", f"--out={tmp_path}/o.png",
                              cwd=tmp_path))
    assert "--seed" in line
    assert os.listdir(tmp_path) == []


def test_out_equal_to_target_never_overwrites_it(tmp_path):
    target = tmp_path / "mine.png"
    original = open(os.path.join(SAMPLES, "nature_potatoes.png"), "rb").read()
    target.write_bytes(original)
    os.symlink(target, tmp_path / "link.png")
    for out in (target, tmp_path / "link.png", tmp_path / "." / "mine.png"):
        line = one_error_line(app("tf_propo.synthesize", f"--target={target}", f"--out={out}"))
        assert "is the target itself" in line
    assert target.read_bytes() == original


def test_special_files_as_target(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for target in (fifo, "/dev/zero"):
        line = one_error_line(app("tf_propo.synthesize", f"--target={target}",
                                  f"--out={tmp_path}/o.png"))
        assert "not a regular file" in line
    assert not (tmp_path / "o.png").exists()


def test_evaluate_refuses_two_targets_of_one_name(tmp_path):
    for folder in ("a", "b"):
        os.makedirs(tmp_path / folder)
        with open(os.path.join(SAMPLES, "nature_potatoes.png"), "rb") as f:
            (tmp_path / folder / "x.png").write_bytes(f.read())
    line = one_error_line(app("tf_propo.evaluate", f"--targets={tmp_path}/a/x.png,"
                              f"{tmp_path}/b/x.png", f"--out={tmp_path}/eval"))
    assert "same file name" in line and not (tmp_path / "eval").exists()


def test_decoders_given_as_a_pseudo_optimizer_name_the_right_flags():
    from tf_propo import methods
    from tf_propo.errors import UsageError
    from tf_propo.ot import synthesis

    decoders = synthesis.bundled_decoders()
    with pytest.raises(UsageError, match=f"--method=ot --decoders={decoders}"):
        methods.load_pseudo_optimizer(decoders, "propo")


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path):
    script = tmp_path / "buggy.py"
    script.write_text(textwrap.dedent("""
        from tf_propo import cli

        def main(argv):
            raise RuntimeError("boom\\nsecond line")

        cli.run(main, tensorflow=False)
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60)
    line = one_error_line(result, code=1)
    assert "unexpected RuntimeError: boom" in line and "--debug" in line
    result = subprocess.run([sys.executable, str(script), "--debug"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" in result.stderr and "boom" in result.stderr


@pytest.mark.parametrize("edit, message", [
    (lambda c: [1, 2], "a JSON object is expected"),
    (lambda c: None, "a JSON object is expected"),
    (lambda c: {**c, "stages": "five"}, "stages must be a positive integer"),
    (lambda c: {**c, "layers": ["relu9_1"]}, "layers must be a list of VGG19 layer names"),
    (lambda c: {**c, "width": -1}, "width must be a positive number"),
])
def test_a_hand_edited_model_config_is_one_clear_error(tmp_path, edit, message):
    import json
    import shutil

    from tf_propo import methods, model_dir
    from tf_propo.errors import UsageError

    copy = tmp_path / "model"
    shutil.copytree(methods.bundled_propo(), copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(edit(config)))
    with pytest.raises(UsageError, match=message):
        model_dir.load_config(str(copy))


def test_truncated_compact_weights_with_a_matching_hash_are_refused(tmp_path):
    import hashlib
    import json
    import shutil

    from tf_propo import methods

    copy = tmp_path / "model"
    shutil.copytree(methods.bundled_propo(), copy)
    weights = copy / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:5000])
    config = json.loads((copy / "config.json").read_text())
    config["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (copy / "config.json").write_text(json.dumps(config))
    line = one_error_line(app("tf_propo.synthesize", "--method=propo", f"--model_dir={copy}",
                              f"--out={tmp_path}/o.png"))
    assert "cannot restore" in line and not (tmp_path / "o.png").exists()


def test_a_second_training_run_into_a_held_model_dir_is_refused(tmp_path):
    from tests.test_train import SMOKE

    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tf_propo import model_dir; "
         "model_dir.hold(sys.argv[1]); print('held', flush=True); time.sleep(300)", str(run)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = one_error_line(app("tf_propo.train", f"--flagfile={SMOKE}",
                                  f"--model_dir={run}"))
        assert "in use by another training run (pid" in line
        assert sorted(os.listdir(run)) == [".lock"]  # the holder's only; nothing written
    finally:
        holder.kill()
        holder.wait()
    from tf_propo import model_dir

    model_dir.hold(str(run))  # free again once the holder is gone
    model_dir._HELD.pop().close()


def test_a_weights_home_that_is_a_file_is_one_error_line(tmp_path):
    home = tmp_path / "home"
    home.write_text("not a folder")
    result = subprocess.run([sys.executable, "-m", "tf_propo.synthesize",
                             f"--out={tmp_path}/o.png"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "TF_PROPO_HOME": str(home)})
    line = one_error_line(result)
    assert "TF_PROPO_HOME" in line and "Not a directory" in line
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("module, out", [
    ("tf_propo.export", "blocker/model.tflite"), ("tf_propo.evaluate", "blocker/eval"),
    ("tf_propo.synthesize", "blocker/o.png")])
def test_an_out_below_a_file_is_refused_before_any_work(tmp_path, module, out):
    (tmp_path / "blocker").write_text("a file, not a folder")
    args = ["--format=tflite"] if module == "tf_propo.export" else []
    if module == "tf_propo.evaluate":
        args = [f"--targets={SAMPLES}"]
    line = one_error_line(app(module, *args, f"--out={tmp_path / out}"))
    assert "cannot write to" in line and str(tmp_path / "blocker") in line


def test_a_full_disk_leaves_no_folder_behind_and_is_one_line(tmp_path):
    import errno

    from tf_propo import files

    def full(f):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "a"))

    with pytest.raises(OSError):
        files.atomic_write(tmp_path / "a" / "b" / "o.png", full)
    with pytest.raises(OSError):
        files.atomic_directory(tmp_path / "c" / "d", lambda folder: full(None))
    assert os.listdir(tmp_path) == []  # not even the folders made on the way
    script = tmp_path / "full.py"
    script.write_text(textwrap.dedent("""
        import errno
        from tf_propo import cli

        def main(argv):
            raise OSError(errno.ENOSPC, "No space left on device", "out/o.png")

        cli.run(main, tensorflow=False)
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60)
    assert one_error_line(result, code=2) == "error: out/o.png: No space left on device"


def test_native_log_lines_are_held_back_unless_the_call_fails(tmp_path):
    # What a C++ library writes to descriptor 2 directly (Python's sys.stderr never sees it).
    script = tmp_path / "native.py"
    script.write_text(textwrap.dedent("""
        import os, sys
        from tf_propo import native_stderr

        with native_stderr.captured():
            os.write(2, b"I0000 a native log line\\n")
        print("quiet", flush=True)
        try:
            with native_stderr.captured():
                os.write(2, b"libfoo: why it failed\\n")
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        os.write(2, b"after\\n")
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout == "quiet\n"
    assert result.stderr == "libfoo: why it failed\nafter\n"
