"""Fixtures shared by every test: sample events, and local AWS built from template.yaml with the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from helpers import TEMPLATE

from abrecon_sandbox.aws import LocalAws
from abrecon_sandbox.emulator import Emulator, EmulatorConfig


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """A small, fast NA data set: 8 orders (two pages of transactions), the emulator's clock 600 times faster."""
    with Emulator(EmulatorConfig(seed=11, orders=8, speed=600.0, report_latency_seconds=(0.0, 60.0))) as emu:
        yield emu


@pytest.fixture(scope="module")
def local_aws(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    """moto with the template's resources, pointed at the emulator, the LWA secret filled in."""
    aws = LocalAws(
        TEMPLATE,
        {"ApiEndpoint": emulator.base_url, "LwaEndpoint": emulator.lwa_url, "PollSeconds": "1", "MaxPolls": "30"},
        tmp_path_factory.mktemp("lambda-logs"),
    )
    aws.start()
    assert aws.stack is not None
    aws.client("secretsmanager").put_secret_value(
        SecretId=aws.stack.output("LwaSecret"), SecretString=json.dumps(emulator.credentials)
    )
    try:
        yield aws
    finally:
        aws.stop()
