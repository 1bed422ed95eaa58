"""Fixtures shared by the unit tests, and the guard that keeps this tier pure."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from moto.core.models import MockAWS
from unit_fakes import FakeHttp, Sleeps, StubTokens


def _refuse(what: str) -> Any:
    def refused(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError(f"a unit test {what}: it belongs in tests/integration (see the README's test tiers)")

    return refused


@pytest.fixture(scope="module", autouse=True)
def pure() -> Iterator[None]:
    """No moto, no server, no subprocess in tests/unit, so the fast loop stays fast: module scope and autouse,
    so it is in place before any module-scoped fixture could start one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MockAWS, "start", _refuse("started moto"))
        patch.setattr(socket.socket, "bind", _refuse("bound a socket (a server)"))
        patch.setattr(subprocess.Popen, "__init__", _refuse("started a subprocess"))
        yield


@pytest.fixture
def http() -> FakeHttp:
    return FakeHttp()


@pytest.fixture
def tokens() -> StubTokens:
    return StubTokens()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()
