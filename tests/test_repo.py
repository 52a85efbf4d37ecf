"""Repository invariants: BUILD names every .py file; CI runs the README's test command."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_files():
    for top in ("tf_propo", "ot", "export", "tests", "configs"):
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith(".py"):
                    yield os.path.relpath(os.path.join(folder, name), ROOT)


def test_every_python_file_has_a_bazel_target():
    with open(os.path.join(ROOT, "BUILD")) as f:
        build = f.read()
    listed = set(re.findall(r'"([\w/]+\.py)"', build))
    missing = sorted(set(python_files()) - listed)
    assert not missing, f"add Bazel targets for {missing}"
    stale = sorted(p for p in listed if not os.path.exists(os.path.join(ROOT, p)))
    assert not stale, f"BUILD names files that do not exist: {stale}"


def test_ci_runs_the_readme_test_command():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    command = re.search(r"<!-- test command -->\s*```(?:sh|bash)?\n(.+?)\n```", readme, re.S)
    assert command, "README must mark its test command with <!-- test command -->"
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci_lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    assert ci_lines[-1] == command.group(1).strip()
