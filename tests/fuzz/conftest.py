"""Fuzz fixtures: the real Track intake handler on moto's SQS (harness in tests/support/fuzz_intake.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fuzz_intake import Intake, intake_on_moto_env


@pytest.fixture(scope="module")
def intake_on_moto() -> Iterator[Intake]:
    with intake_on_moto_env() as built:
        yield built
