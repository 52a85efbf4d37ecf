"""Bazel's entry point for the py_test targets: pytest on the test file given as argument (the
file itself, run as a script, would define its tests and run none)."""

import sys

import pytest

if __name__ == "__main__":
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
