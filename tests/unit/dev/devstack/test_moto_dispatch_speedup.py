"""The moto function ``moto_dispatch_speedup`` replaces still exists and lists moto's modules, and
the replacement lists exactly the same ones (checked in a child process: the patch is process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys

from moto import backends

from tests.support.lambdas import ROOT

CHILD = """
import json, moto.backends as b
before = list(b.list_of_moto_modules())
from orb_bridge_dev.devstack.moto_dispatch_speedup import speed_up_moto_dispatch
speed_up_moto_dispatch()
print(json.dumps([before, list(b.list_of_moto_modules()), list(b.list_of_moto_modules())]))
"""


def test_moto_still_lists_its_modules_where_the_patch_expects() -> None:
    modules = list(backends.list_of_moto_modules())
    assert {"s3", "sqs", "dynamodb", "events"} <= set(modules)


def test_the_patched_list_is_the_same_list_every_time() -> None:
    env_path = f"{ROOT / 'dev'}"
    output = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        timeout=120,
    ).stdout
    before, first, second = json.loads(output)
    assert before == first == second
