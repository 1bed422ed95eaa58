"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest
from unit_fakes import FakeHttp, Sleeps, StubTokens


@pytest.fixture
def http() -> FakeHttp:
    return FakeHttp()


@pytest.fixture
def tokens() -> StubTokens:
    return StubTokens()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()
