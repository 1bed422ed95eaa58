"""Fixtures shared by every test: sample events, and local AWS built from template.yaml with the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import local_aws_for

from abrecon_sandbox.aws.local_aws import LocalAws
from abrecon_sandbox.emulator import Emulator, EmulatorConfig


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """A small, fast NA data set: 8 orders (two pages of transactions), the emulator's clock 600 times faster."""
    with Emulator(EmulatorConfig(seed=11, orders=8, speed=600.0, report_latency_seconds=(0.0, 60.0))) as emu:
        yield emu


@pytest.fixture(scope="module")
def local_aws(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    """moto with the template's resources, pointed at the emulator, the LWA secret filled in."""
    with local_aws_for(emulator, tmp_path_factory.mktemp("lambda-logs")) as aws:
        yield aws
