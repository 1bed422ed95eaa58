"""Fixtures of the end-to-end tests of the operator CLI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from abrecon_sandbox.aws.local_aws import CREDENTIALS, LocalAws
from abrecon_sandbox.aws.stack import REGION


@pytest.fixture
def operator_env(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An operator's shell: credentials and region as usual, AWS reached through AWS_ENDPOINT_URL (moto here)."""
    for name in ("ABRECON_STACK", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": local_aws.endpoint_url, "AWS_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    yield
