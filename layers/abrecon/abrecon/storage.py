"""Where results live: PDFs and JSON in the KMS-encrypted bucket, invoice states in the DynamoDB ledger."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource
    from mypy_boto3_s3.client import S3Client

BATCH_GET_LIMIT = 100


class StorageError(Exception):
    """An S3 or DynamoDB call failed in a way a retry may fix."""


@dataclass(frozen=True)
class StoredObject:
    """One object written to the document bucket."""

    key: str
    sha256: str
    size: int


class DocumentStore:
    """Writes and reads objects in the document bucket, always under SSE-KMS with the stack's own key."""

    def __init__(self, s3: S3Client, bucket: str, key_arn: str) -> None:
        self._s3 = s3
        self.bucket = bucket
        self._key_arn = key_arn

    def put_bytes(self, key: str, content: bytes, content_type: str) -> StoredObject:
        """Store bytes straight from memory; returns the key and the content's sha256."""
        digest = hashlib.sha256(content).hexdigest()
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
            )
        except ClientError as exc:
            raise StorageError(f"could not write s3://{self.bucket}/{key}: {exc}") from exc
        return StoredObject(key=key, sha256=digest, size=len(content))

    def put_json(self, key: str, data: Any) -> StoredObject:
        """Store a JSON document (pydantic models dumped in JSON mode, Decimals as strings)."""
        body = json.dumps(data, separators=(",", ":"), default=str).encode()
        return self.put_bytes(key, body, "application/json")

    def get_json(self, key: str) -> Any:
        """Read a JSON document written by put_json."""
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise StorageError(f"could not read s3://{self.bucket}/{key}: {exc}") from exc
        return json.loads(body)


class InvoiceState(StrEnum):
    """Where an invoice stands in the ledger."""

    REQUESTED = "REQUESTED"
    STORED = "STORED"
    FAILED = "FAILED"
    DEFERRED = "DEFERRED"


class InvoiceRecord(BaseModel):
    """One invoice's row in the ledger."""

    model_config = ConfigDict(populate_by_name=True)

    invoice_number: str = Field(alias="invoiceNumber")
    state: InvoiceState
    report_id: str | None = Field(default=None, alias="reportId")
    s3_keys: list[str] = Field(default_factory=list, alias="s3Keys")
    sha256: list[str] = Field(default_factory=list)
    reason: str | None = None
    run_id: str | None = Field(default=None, alias="runId")


def _invoice_pk(invoice_number: str) -> str:
    # The state machine's failure path builds the same key with States.Format('INVOICE#{}', ...).
    return f"INVOICE#{invoice_number}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Ledger:
    """The durable record of every invoice's state, shared by all executions."""

    def __init__(self, dynamodb: DynamoDBServiceResource, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = dynamodb.Table(table_name)

    def get(self, invoice_number: str) -> InvoiceRecord | None:
        """The invoice's record, or None if no step has touched it yet."""
        try:
            item = self._table.get_item(Key={"pk": _invoice_pk(invoice_number)}, ConsistentRead=True).get("Item")
        except ClientError as exc:
            raise StorageError(f"could not read ledger entry for invoice {invoice_number}: {exc}") from exc
        return InvoiceRecord.model_validate(item) if item else None

    def get_many(self, invoice_numbers: Iterable[str]) -> dict[str, InvoiceRecord]:
        """Records for many invoices, read in batches of 100."""
        wanted = sorted(set(invoice_numbers))
        found: dict[str, InvoiceRecord] = {}
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            keys: list[dict[str, Any]] = [{"pk": _invoice_pk(n)} for n in wanted[start : start + BATCH_GET_LIMIT]]
            request: dict[str, Any] = {self._table.name: {"Keys": keys, "ConsistentRead": True}}
            for _attempt in range(10):
                try:
                    answer = self._dynamodb.batch_get_item(RequestItems=request)
                except ClientError as exc:
                    raise StorageError(f"could not read ledger entries: {exc}") from exc
                for item in answer["Responses"].get(self._table.name, []):
                    record = InvoiceRecord.model_validate(item)
                    found[record.invoice_number] = record
                request = dict(answer.get("UnprocessedKeys") or {})
                if not request:
                    break
            else:
                raise StorageError("ledger batch read left unprocessed keys after 10 attempts")
        return found

    def _write(self, invoice_number: str, run_id: str, fields: dict[str, Any], condition: str | None = None) -> None:
        item = {
            "pk": _invoice_pk(invoice_number),
            "invoiceNumber": invoice_number,
            "runId": run_id,
            "updatedAt": _now(),
            **fields,
        }
        names = {f"#{k}": k for k in item if k != "pk"}
        values = {f":{k}": v for k, v in item.items() if k != "pk"}
        update = "SET " + ", ".join(f"#{k} = :{k}" for k in item if k != "pk")
        kwargs: dict[str, Any] = {}
        if condition:
            kwargs["ConditionExpression"] = condition
        try:
            self._table.update_item(
                Key={"pk": item["pk"]},
                UpdateExpression=update,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                **kwargs,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise
            raise StorageError(f"could not update ledger entry for invoice {invoice_number}: {exc}") from exc

    def record_requested(self, invoice_number: str, report_id: str, run_id: str) -> None:
        """Persist the reportId before any wait, so a retry or a later run reuses it instead of asking again."""
        self._write(
            invoice_number, run_id, {"state": InvoiceState.REQUESTED.value, "reportId": report_id, "reason": None}
        )

    def record_stored(self, invoice_number: str, objects: list[StoredObject], run_id: str) -> None:
        """Mark the invoice's documents stored, with their keys and checksums."""
        self._write(
            invoice_number,
            run_id,
            {
                "state": InvoiceState.STORED.value,
                "s3Keys": [o.key for o in objects],
                "sha256": [o.sha256 for o in objects],
                "reason": None,
            },
        )

    def record_failed(self, invoice_number: str, reason: str, run_id: str) -> None:
        """Mark the invoice failed, with a reason a person can act on."""
        self._write(invoice_number, run_id, {"state": InvoiceState.FAILED.value, "reason": reason})

    def record_deferred(self, invoice_number: str, reason: str, run_id: str) -> None:
        """Hand the invoice to the next run, keeping its reportId so no second report is created."""
        self._write(invoice_number, run_id, {"state": InvoiceState.DEFERRED.value, "reason": reason})
