"""Shared helpers of the Python test suite (run by `cargo xtask ci` in a fresh virtualenv)."""

import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
DOC_SCRIPTS = os.path.join(HERE, "doc_scripts")


def wait_until(predicate, timeout=10.0, interval=0.01):
    """Polls `predicate` until it is true or `timeout` seconds pass; returns its last value."""
    end = time.time() + timeout
    while True:
        value = predicate()
        if value or time.time() >= end:
            return value
        time.sleep(interval)


def doc_script(name, replacements):
    """The text of a script copied from the reference documents, with `replacements` applied
    (the documents use fixed port 9999 and endless loops; tests use port 0 and end)."""
    with open(os.path.join(DOC_SCRIPTS, name)) as f:
        text = f.read()
    for old, new in replacements.items():
        assert old in text, f"{old!r} not in {name}"
        text = text.replace(old, new)
    return text


def run_python(code, cwd, timeout=60, **kwargs):
    """Runs `code` in a fresh interpreter of this virtualenv."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


@pytest.fixture
def wait():
    return wait_until
