"""Test doubles for the unit tests (and the integration tier): an in-process HTTP adapter, a stub token source,
a sleep recorder, S3 as AWS answers a role without s3:ListBucket."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import urllib3
from botocore.exceptions import ClientError
from requests.adapters import HTTPAdapter


@dataclass
class Reply:
    """A canned HTTP answer."""

    status: int = 200
    json_body: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw_factory: Callable[[], io.RawIOBase | io.BufferedIOBase] | None = None

    def content(self) -> bytes:
        if self.body is not None:
            return self.body
        if self.json_body is not None:
            return json.dumps(self.json_body).encode()
        return b""


@dataclass
class Seen:
    """A request the fake adapter received."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    timeout: Any
    stream: bool

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def params(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.url).query, keep_blank_values=True).items()}

    @property
    def query_keys(self) -> list[str]:
        return [part.split("=", 1)[0] for part in urlsplit(self.url).query.split("&") if part]

    def json(self) -> Any:
        assert self.body is not None
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        assert self.body is not None
        text = self.body.decode() if isinstance(self.body, bytes) else self.body
        return {k: v[0] for k, v in parse_qs(text).items()}


Step = Reply | BaseException | Callable[[Seen], "Reply | BaseException"]


class FakeAdapter(HTTPAdapter):
    """Answers requests from a script instead of the network, through real urllib3 responses."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[Step] = []
        self.seen: list[Seen] = []

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        body = request.body.encode() if isinstance(request.body, str) else request.body
        seen = Seen(
            method=request.method or "",
            url=request.url or "",
            headers=dict(request.headers),
            body=body,
            timeout=timeout,
            stream=stream,
        )
        self.seen.append(seen)
        if not self.script:
            raise AssertionError(f"unexpected request {seen.method} {seen.url}")
        step = self.script.pop(0)
        if callable(step) and not isinstance(step, BaseException):
            step = step(seen)
        if isinstance(step, BaseException):
            raise step
        raw_body = step.raw_factory() if step.raw_factory is not None else io.BytesIO(step.content())
        raw = urllib3.HTTPResponse(
            body=raw_body,
            headers=step.headers,
            status=step.status,
            preload_content=False,
            decode_content=True,
            request_url=request.url,
        )
        return self.build_response(request, raw)


class FakeHttp:
    """A requests.Session whose answers come from ``queue``d replies."""

    def __init__(self) -> None:
        self.adapter = FakeAdapter()
        self.session = requests.Session()
        self.session.mount("https://", self.adapter)
        self.session.mount("http://", self.adapter)

    def queue(self, *steps: Step) -> None:
        self.adapter.script.extend(steps)

    @property
    def seen(self) -> list[Seen]:
        return self.adapter.seen

    @property
    def pending(self) -> int:
        return len(self.adapter.script)


class StubTokens:
    """Token source handing out tok-1, tok-2, ... (a new one after each invalidate)."""

    def __init__(self) -> None:
        self.generation = 1
        self.invalidations = 0

    def access_token(self) -> str:
        return f"Atza|tok-{self.generation}"

    def invalidate(self, refused: str | None = None) -> None:
        if refused is not None and refused != self.access_token():
            return  # another caller has a fresh one already
        self.invalidations += 1
        self.generation += 1


class Sleeps:
    """Records requested sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def s3_error(operation: str, status: int, code: str) -> ClientError:
    """A botocore ClientError as S3 answers it (HEAD errors carry the status as their code, like botocore's)."""
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


class StrictS3:
    """The S3 calls DocumentStore makes, answered as AWS answers a role with s3:GetObject/PutObject on the keys but
    no s3:ListBucket: HeadObject/GetObject of a missing key is 403 AccessDenied, not 404. Versioned, honours
    If-None-Match: *; `conflicts` makes that many create-only writes answer 409 ConditionalRequestConflict, and
    `write_meanwhile` stores an object just before the next create-only write (the other writer of a race)."""

    def __init__(self) -> None:
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, str]] = []
        self.conflicts = 0
        self.write_meanwhile: dict[str, bytes] = {}

    def _current(self, key: str, operation: str) -> dict[str, Any]:
        if key not in self.versions:
            raise s3_error(operation, 403, "403" if operation == "HeadObject" else "AccessDenied")
        return self.versions[key][-1]

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("PutObject", Key))
        if kwargs.get("IfNoneMatch") == "*":
            if Key in self.write_meanwhile:
                other = self.write_meanwhile.pop(Key)
                self.versions.setdefault(Key, []).append({"Body": other, "Metadata": {"sha256": _sha256(other)}})
            if self.conflicts:
                self.conflicts -= 1
                raise s3_error("PutObject", 409, "ConditionalRequestConflict")
            if Key in self.versions:
                raise s3_error("PutObject", 412, "PreconditionFailed")
        self.versions.setdefault(Key, []).append({"Body": Body, "Metadata": dict(kwargs.get("Metadata", {}))})
        return {"ETag": f'"{len(self.versions[Key])}"'}

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        self.calls.append(("HeadObject", Key))
        return {"Metadata": self._current(Key, "HeadObject")["Metadata"]}

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        self.calls.append(("GetObject", Key))
        return {"Body": io.BytesIO(self._current(Key, "GetObject")["Body"])}


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
