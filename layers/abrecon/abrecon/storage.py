"""Where results live: PDFs and JSON in the KMS-encrypted bucket, invoice states in the DynamoDB ledger."""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar, overload

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from abrecon._http import RetryPolicy

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource, Table
    from mypy_boto3_s3.client import S3Client

BATCH_GET_LIMIT = 100
# S3 requests in flight at once when a step writes or reads one object per invoice: a 10,000-invoice backfill
# takes seconds instead of minutes, and the state machine's first createReport waits for those writes.
PARALLEL_S3_REQUESTS = 16
# A create-only write answered 409 (another write of the key in progress) is tried again this often, full jitter.
WRITE_CONFLICT_RETRY = RetryPolicy(max_attempts=5, base_delay=0.1, max_delay=2.0)
# Reads and conditional writes of one invoice's record before another execution's changes count as a failure.
LEDGER_ATTEMPTS = 3

T = TypeVar("T")


class StorageError(Exception):
    """An S3 or DynamoDB call failed in a way a retry may fix."""


class _AlreadyThere(Exception):
    """A create-only write found an object under its key."""


class _WriteConflict(Exception):
    """A create-only write raced another write of its key (S3's 409 ConditionalRequestConflict)."""


@dataclass(frozen=True)
class StoredObject:
    """One object written to the document bucket."""

    key: str
    sha256: str
    size: int


class DocumentStore:
    """Writes and reads objects in the document bucket, always under SSE-KMS with the stack's own key."""

    def __init__(self, s3: S3Client, bucket: str, key_arn: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._s3 = s3
        self.bucket = bucket
        self._key_arn = key_arn
        self._sleep = sleep

    def put_bytes(self, key: str, content: bytes, content_type: str, *, create_only: bool = False) -> StoredObject:
        """Store bytes straight from memory; returns the key and the content's sha256.

        create_only: only if no object has the key (If-None-Match: *); otherwise _AlreadyThere, or _WriteConflict
        when S3 answers 409 because another write of the key was in progress.
        """
        digest = hashlib.sha256(content).hexdigest()
        conditions: dict[str, Any] = {"IfNoneMatch": "*"} if create_only else {}
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=content,
                ContentType=content_type,
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=self._key_arn,
                ChecksumAlgorithm="SHA256",
                Metadata={"sha256": digest},
                **conditions,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if create_only and code == "PreconditionFailed":
                raise _AlreadyThere(key) from exc
            if create_only and code == "ConditionalRequestConflict":
                raise _WriteConflict(key) from exc
            raise StorageError(f"could not write s3://{self.bucket}/{key}: {exc}") from exc
        return StoredObject(key=key, sha256=digest, size=len(content))

    def put_bytes_once(self, key: str, content: bytes, content_type: str) -> StoredObject:
        """Store bytes unless the same content is already there: a retried step never makes a second version.

        The write comes first, create-only (If-None-Match: *), and the object is looked at only once S3 said
        one is there (412): a role without s3:ListBucket is answered 403, not 404, for a key that does not
        exist, so looking first would fail every new document. When S3 answers a write 5xx after storing it,
        the SDK's own retry is refused (412) and the object is found with our bytes. A 409 (another write of
        the key in progress) is retried after a jittered backoff, as S3's PutObject reference asks.
        """
        digest = hashlib.sha256(content).hexdigest()
        for attempt in range(1, WRITE_CONFLICT_RETRY.max_attempts + 1):
            try:
                return self.put_bytes(key, content, content_type, create_only=True)
            except _AlreadyThere:
                there = self._stored_sha256(key)
                break
            except _WriteConflict as exc:
                if attempt < WRITE_CONFLICT_RETRY.max_attempts:
                    self._sleep(WRITE_CONFLICT_RETRY.delay(attempt))
                    continue
                try:  # still racing after the last attempt: the other writer's object is looked at as after a 412
                    there = self._stored_sha256(key)
                except StorageError as missing:
                    raise StorageError(
                        f"could not write s3://{self.bucket}/{key}: S3 answered 409 ConditionalRequestConflict"
                        f" {attempt} times and no object is there ({missing})"
                    ) from exc
        if there == digest:
            return StoredObject(key=key, sha256=digest, size=len(content))
        return self.put_bytes(key, content, content_type)  # other bytes under the key: a new version

    def _stored_sha256(self, key: str) -> str:
        """The sha256 recorded on the object S3 just said is under key ("" if it has none)."""
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            raise StorageError(f"could not look up s3://{self.bucket}/{key}: {exc}") from exc
        return str(head.get("Metadata", {}).get("sha256", ""))

    def put_json(self, key: str, data: Any) -> StoredObject:
        """Store a JSON document (pydantic models dumped in JSON mode, Decimals as strings)."""
        body = json.dumps(data, separators=(",", ":"), default=str).encode()
        return self.put_bytes(key, body, "application/json")

    def put_json_many(self, documents: dict[str, Any]) -> None:
        """Store many JSON documents (key -> data), several requests at a time; the first failure is raised."""
        with ThreadPoolExecutor(max_workers=PARALLEL_S3_REQUESTS) as pool:
            list(pool.map(self.put_json, documents.keys(), documents.values()))

    def get_json(self, key: str) -> Any:
        """Read a JSON document written by put_json."""
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise StorageError(f"could not read s3://{self.bucket}/{key}: {exc}") from exc
        return json.loads(body)

    def get_json_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Read many JSON documents, several requests at a time: key -> data."""
        wanted = list(dict.fromkeys(keys))
        with ThreadPoolExecutor(max_workers=PARALLEL_S3_REQUESTS) as pool:
            return dict(zip(wanted, pool.map(self.get_json, wanted), strict=True))


class InvoiceState(StrEnum):
    """Where an invoice stands in the ledger."""

    CLAIMED = "CLAIMED"  # an execution owns it and is about to ask for its report
    REQUESTED = "REQUESTED"  # the report was asked for; reportId recorded before any wait
    STORED = "STORED"
    FAILED = "FAILED"
    DEFERRED = "DEFERRED"  # the poll budget ran out; the next run polls the same reportId


class LineItemState(StrEnum):
    """Where a transaction line item stands: its invoice known, or not yet."""

    PENDING = "PENDING"
    INVOICED = "INVOICED"
    # Listed without a shipmentId (ordered, not shipped yet): no invoice can exist, kept open like PENDING.
    NOT_SHIPPED = "NOT_SHIPPED"
    # A NOT_SHIPPED entry closed because Amazon now lists the same transaction's line item with its shipment
    # (that entry, keyed by the full triple, carries it on).
    SHIPPED = "SHIPPED"


OPEN_LINE_ITEM_STATES = frozenset({LineItemState.PENDING, LineItemState.NOT_SHIPPED})


class InvoiceRecord(BaseModel):
    """One invoice's row in the ledger."""

    model_config = ConfigDict(populate_by_name=True)

    invoice_number: str = Field(alias="invoiceNumber")
    state: InvoiceState
    report_id: str | None = Field(default=None, alias="reportId")
    s3_keys: list[str] = Field(default_factory=list, alias="s3Keys")
    sha256: list[str] = Field(default_factory=list)
    reason: str | None = None
    terminal: bool = False
    # Reports of this invoice that ended FATAL; the first one earned the invoice its one retry.
    fatal_report_ids: list[str] = Field(default_factory=list, alias="fatalReportIds")
    # Reports Amazon stopped serving (getReport 404: older than its 30/90 days); the first earned one new report.
    expired_report_ids: list[str] = Field(default_factory=list, alias="expiredReportIds")
    # A createReport whose answer is not known yet: when it was sent (recorded before the call) and when its answer
    # was found lost (None: the caller died). Cleared once the report is found or known not to exist.
    create_attempt_at: Decimal | None = Field(default=None, alias="createAttemptAt")
    create_attempt_until: Decimal | None = Field(default=None, alias="createAttemptUntil")
    # createReport answers lost while the current execution owns the invoice (bounded, see lost_reports).
    lost_answers: int = Field(default=0, alias="lostAnswers")
    # Runs whose download of this invoice's document failed (broken document); bounded by DOCUMENT_RETRY_RUNS.
    document_failures: int = Field(default=0, alias="documentFailures")
    run_id: str | None = Field(default=None, alias="runId")
    heartbeat: Decimal = Decimal(0)
    version: int = 0

    def owned_by_other(self, run_id: str, now: float, stale_after: float) -> bool:
        """Whether another live execution is working on this invoice."""
        working = self.state in (InvoiceState.CLAIMED, InvoiceState.REQUESTED)
        return working and self.run_id != run_id and float(self.heartbeat) > now - stale_after


class LedgerConflict(Exception):
    """Someone else changed the record between our read and our write."""


def _invoice_pk(invoice_number: str) -> str:
    # The state machine's failure path builds the same key with States.Format('INVOICE#{}', ...).
    return f"INVOICE#{invoice_number}"


def line_item_pk(order_id: str, order_line_item_id: str, shipment_id: str | None) -> str:
    """The ledger key of a line item: the triple, or what Amazon gave (order and line item) without a shipment."""
    if shipment_id is None:
        return f"LINE#{order_id}|{order_line_item_id}"
    return f"LINE#{order_id}|{order_line_item_id}|{shipment_id}"


# Amazon serves a report for at most 90 days; its marker is not needed longer.
REPORT_MARKER_TTL_SECONDS = 90 * 24 * 3600


def _report_pk(report_id: str) -> str:
    return f"REPORT#{report_id}"


OPEN_INDEX = "open"  # sparse GSI: only pending line items and deferred invoices carry its key, `openKind`


class Ledger:
    """The durable record of every invoice and line item, shared by all executions.

    Every invoice write is conditional on the version read before it (optimistic concurrency), so two
    executions working on the same window never both ask for a report or both store the documents.
    """

    def __init__(self, dynamodb: DynamoDBServiceResource, table_name: str, clock: Any = time.time) -> None:
        self._dynamodb = dynamodb
        self._table = dynamodb.Table(table_name)
        self._clock = clock

    @property
    def table(self) -> Table:
        """The DynamoDB table (the rate-limit buckets live in it too)."""
        return self._table

    def now(self) -> float:
        """The clock every ledger decision uses."""
        return float(self._clock())

    def get(self, invoice_number: str) -> InvoiceRecord | None:
        """The invoice's record, or None if no step has touched it yet."""
        try:
            item = self._table.get_item(Key={"pk": _invoice_pk(invoice_number)}, ConsistentRead=True).get("Item")
        except ClientError as exc:
            raise StorageError(f"could not read ledger entry for invoice {invoice_number}: {exc}") from exc
        return InvoiceRecord.model_validate(item) if item else None

    def get_many(self, invoice_numbers: Iterable[str]) -> dict[str, InvoiceRecord]:
        """Records for many invoices, read in batches of 100."""
        found: dict[str, InvoiceRecord] = {}
        for item in self._batch_get([_invoice_pk(n) for n in sorted(set(invoice_numbers))]):
            record = InvoiceRecord.model_validate(item)
            found[record.invoice_number] = record
        return found

    def get_items(self, pks: Iterable[str]) -> list[dict[str, Any]]:
        """Raw entries of any kind by key, read in batches of 100 (keys without an entry are left out)."""
        return self._batch_get(sorted(set(pks)))

    def put_items(self, items: Iterable[dict[str, Any]]) -> None:
        """Write whole entries (each with its pk), replacing what was there, in batches."""
        try:
            with self._table.batch_writer(overwrite_by_pkeys=["pk"]) as batch:
                for item in items:
                    batch.put_item(Item={k: _ddb(v) for k, v in item.items()})
        except ClientError as exc:
            raise StorageError(f"could not write ledger entries: {exc}") from exc

    def _batch_get(self, keys: list[str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self._table.name: {
                    "Keys": [{"pk": k} for k in keys[start : start + BATCH_GET_LIMIT]],
                    "ConsistentRead": True,
                }
            }
            for attempt in range(10):
                try:
                    answer = self._dynamodb.batch_get_item(RequestItems=request)
                except ClientError as exc:
                    raise StorageError(f"could not read ledger entries: {exc}") from exc
                items.extend(answer["Responses"].get(self._table.name, []))
                request = dict(answer.get("UnprocessedKeys") or {})
                if not request:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())  # noqa: S311  # nosec B311 # jitter
            else:
                raise StorageError("ledger batch read left unprocessed keys after 10 attempts")
        return items

    def write(self, invoice_number: str, expected: InvoiceRecord | None, run_id: str, **fields: Any) -> InvoiceRecord:
        """Write the invoice's new state if nobody changed it since `expected` was read; raises LedgerConflict."""
        version = (expected.version if expected else 0) + 1
        base: dict[str, Any] = {
            "invoiceNumber": invoice_number,
            "runId": run_id,
            "version": version,
            "heartbeat": Decimal(repr(round(self.now(), 3))),
            "updatedAt": _now_iso(),
        }
        item = {**base, **{_FIELD_NAMES.get(k, k): _ddb(v) for k, v in fields.items()}}
        names = {f"#{k}": k for k in item}
        values = {f":{k}": v for k, v in item.items()}
        update = "SET " + ", ".join(f"#{k} = :{k}" for k in item)
        if "openKind" not in item:
            update += " REMOVE #openKind"
            names["#openKind"] = "openKind"
        if expected is None:
            condition = "attribute_not_exists(pk)"
        else:
            condition = "#version = :expected"
            values[":expected"] = expected.version
        try:
            self._table.update_item(
                Key={"pk": _invoice_pk(invoice_number)},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise StorageError(f"could not update ledger entry for invoice {invoice_number}: {exc}") from exc
            # DynamoDB may apply a write and still answer 5xx; the SDK's retry then fails its own condition.
            if not self._landed(invoice_number, base):
                raise LedgerConflict(invoice_number) from exc
        merged = {**(expected.model_dump(by_alias=True) if expected else {}), **item}
        return InvoiceRecord.model_validate(merged)

    def with_retries(self, invoice_number: str, attempt: Callable[[InvoiceRecord | None], T]) -> T:
        """Read the invoice's record and hand it to ``attempt``, which decides and writes (Ledger.write); when a
        write finds the record changed meanwhile (LedgerConflict), read it again and ask again, LEDGER_ATTEMPTS
        times in all, then StorageError. The one read-check-write loop of the ledger: ``update`` is built on it."""
        for _attempt in range(LEDGER_ATTEMPTS):
            record = self.get(invoice_number)
            try:
                return attempt(record)
            except LedgerConflict:
                continue
        raise StorageError(f"invoice {invoice_number}: the ledger entry kept changing under three attempts")

    @overload
    def update(
        self, invoice_number: str, run_id: str, decide: Callable[[InvoiceRecord | None], dict[str, Any]]
    ) -> InvoiceRecord: ...

    @overload
    def update(
        self, invoice_number: str, run_id: str, decide: Callable[[InvoiceRecord | None], dict[str, Any] | None]
    ) -> InvoiceRecord | None: ...

    def update(
        self,
        invoice_number: str,
        run_id: str,
        decide: Callable[[InvoiceRecord | None], dict[str, Any] | None],
    ) -> InvoiceRecord | None:
        """Write the fields ``decide`` picks for the record as read (None: write nothing), retrying on a conflict.

        Returns the record as written, or as read when ``decide`` wrote nothing.
        """

        def write_decided(record: InvoiceRecord | None) -> InvoiceRecord | None:
            fields = decide(record)
            return record if fields is None else self.write(invoice_number, record, run_id, **fields)

        return self.with_retries(invoice_number, write_decided)

    def _landed(self, invoice_number: str, base: dict[str, Any]) -> bool:
        """Whether the ledger holds exactly the write `base` began (same version, run and heartbeat)."""
        current = self.get(invoice_number)
        return (
            current is not None
            and current.version == base["version"]
            and current.run_id == base["runId"]
            and current.heartbeat == base["heartbeat"]
        )

    def remember_report(self, report_id: str, invoice_number: str, *, only_if_new: bool = False) -> bool:
        """Note which invoice a reportId belongs to (`REPORT#<id>`), so a lost createReport answer can tell reports
        it made from everyone else's; only_if_new: False if the id is noted already (for someone else)."""
        item = {
            "pk": _report_pk(report_id),
            "invoiceNumber": invoice_number,
            "expiresAt": int(self.now()) + REPORT_MARKER_TTL_SECONDS,
        }
        condition = {"ConditionExpression": "attribute_not_exists(pk)"} if only_if_new else {}
        try:
            self._table.put_item(Item=item, **condition)  # type: ignore[arg-type]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                # Noted already: by someone else, or by this very put (applied, answered 5xx, retried by the SDK).
                return self.known_reports([report_id]).get(report_id) == invoice_number
            raise StorageError(f"could not note report {report_id} of invoice {invoice_number}: {exc}") from exc
        return True

    def known_reports(self, report_ids: Iterable[str]) -> dict[str, str]:
        """reportId -> invoice number, for the ids some invoice recorded (remember_report)."""
        items = self._batch_get([_report_pk(r) for r in sorted(set(report_ids))])
        return {str(i["pk"]).removeprefix("REPORT#"): str(i.get("invoiceNumber", "")) for i in items}

    def open_items(self, kind: str) -> list[dict[str, Any]]:
        """Every pending line item ("LINE"), deferred invoice ("INVOICE"), unpaid invoice ("PAYMENT") or invoice whose
        createReport answer is unknown ("ATTEMPT"), from the sparse index."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"IndexName": OPEN_INDEX, "KeyConditionExpression": Key("openKind").eq(kind)}
        while True:
            try:
                page = self._table.query(**kwargs)
            except ClientError as exc:
                raise StorageError(f"could not read open {kind} entries: {exc}") from exc
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def put_line_items(self, rows: Iterable[tuple[str, LineItemState, dict[str, Any]]], run_id: str) -> None:
        """Record each line item's state; pending and not shipped ones stay in the open index until a run finds
        their invoice."""
        try:
            with self._table.batch_writer(overwrite_by_pkeys=["pk"]) as batch:
                for pk, state, data in rows:
                    item: dict[str, Any] = {
                        "pk": pk,
                        "state": state.value,
                        "runId": run_id,
                        "updatedAt": _now_iso(),
                        **{k: _ddb(v) for k, v in data.items()},
                    }
                    if state in OPEN_LINE_ITEM_STATES:
                        item["openKind"] = "LINE"
                    batch.put_item(Item=item)
        except ClientError as exc:
            raise StorageError(f"could not record line items: {exc}") from exc


_FIELD_NAMES = {
    "report_id": "reportId",
    "s3_keys": "s3Keys",
    "open_kind": "openKind",
    "fatal_report_ids": "fatalReportIds",
    "expired_report_ids": "expiredReportIds",
    "create_attempt_at": "createAttemptAt",
    "create_attempt_until": "createAttemptUntil",
    "lost_answers": "lostAnswers",
    "document_failures": "documentFailures",
}


def _ddb(value: Any) -> Any:
    """DynamoDB takes Decimal, not float; enums as their value."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, dict):
        return {k: _ddb(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ddb(v) for v in value]
    return value


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
