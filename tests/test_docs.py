"""The documentation stays readable: a one-screen README, links and pictures that resolve, and
no text that points a reader at documents or tracker entries outside the repository."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# Pointers a reader cannot follow: design notes kept outside the repository, and references
# to a bug-tracker entry in place of the goal it states (this file is not scanned).
OUTSIDE_REFERENCES = re.compile(r"\b(?:PAPER|DESIGN|OT)\.md\b|\bthe issue\b|\bissue's\b",
                                re.IGNORECASE)
TEXT = (".md", ".py", ".flags", ".cfg", ".toml", ".txt", ".sh", "BUILD", "run")


def tracked(*patterns):
    out = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return [p for p in out.splitlines() if os.path.exists(os.path.join(ROOT, p))]


def test_readme_fits_one_screen():
    with open(os.path.join(ROOT, "README.md")) as f:
        assert len(f.read().splitlines()) <= 150


def test_every_relative_link_and_image_resolves():
    documents = ["README.md"] + [p for p in tracked("docs") if p.endswith(".md")]
    assert len(documents) > 5
    broken = []
    for document in documents:
        with open(os.path.join(ROOT, document)) as f:
            text = f.read()
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL, or an anchor in the same page
            path = os.path.normpath(os.path.join(ROOT, os.path.dirname(document),
                                                 target.split("#")[0]))
            if not os.path.exists(path):
                broken.append(f"{document}: {target}")
    assert not broken, broken


def test_no_references_outside_the_repository():
    found = []
    for path in tracked():
        if not path.endswith(TEXT) or path == "tests/test_docs.py":
            continue
        with open(os.path.join(ROOT, path), errors="replace") as f:
            for number, line in enumerate(f, 1):
                if OUTSIDE_REFERENCES.search(line):
                    found.append(f"{path}:{number}: {line.strip()[:80]}")
    assert not found, "\n".join(found)


def flag_help(module, flag):
    """`python -m module --helpfull`'s entry for --flag, whitespace folded."""
    result = subprocess.run([sys.executable, "-m", module, "--helpfull"], capture_output=True,
                            text=True, timeout=120)
    help_text = " ".join((result.stdout + result.stderr).split())
    return re.split(r" --\w+: ", help_text[help_text.index(f"--{flag}:") + 1:])[0]


@pytest.mark.parametrize("module, method", [("tf_propo.synthesize", "quilt"),
                                            ("tf_propo.synthesize", "ot"),
                                            ("tf_propo.export", "quilt"),
                                            ("tf_propo.benchmarks.export_latency", "quilt")])
def test_help_states_the_default_polish_steps(module, method):
    """--polish_steps' help spells the default (apps define flags before importing TF, so it
    cannot read methods.POLISH_STEPS); this keeps the two from drifting apart."""
    from tf_propo import methods

    entry = flag_help(module, "polish_steps")
    steps = methods.default_polish_steps(method)
    assert (f"{steps} for {method}" in entry if module.endswith("synthesize")
            else f"{steps}." in entry or f"{steps})" in entry), entry


def test_preset_descriptions_state_the_default_polish_steps():
    from tf_propo import api, methods

    stated = {}
    for name, (method, options, description) in api._PRESETS.items():
        for steps in re.findall(r"polished by (\d+) ", description):
            assert "polish_steps" not in options, name
            stated[name] = int(steps)
            assert int(steps) == methods.default_polish_steps(method), name
    assert {"quilt", "ot", "ot_sliced", "ot_eigh"} <= set(stated)
