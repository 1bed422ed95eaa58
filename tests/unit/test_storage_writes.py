"""DocumentStore.put_bytes_once as AWS answers it: the download role has s3:GetObject/PutObject on documents/* but no
s3:ListBucket, so S3 answers 403 (not moto's 404) for a key that does not exist; concurrent create-only writes may
answer 409 ConditionalRequestConflict, which S3's PutObject reference says to retry."""

from __future__ import annotations

import hashlib

import boto3
import pytest
from botocore.stub import Stubber
from unit_fakes import Sleeps, StrictS3

from abrecon.storage import WRITE_CONFLICT_RETRY, DocumentStore, StorageError

BUCKET = "documents-bucket"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY = "documents/ATVPDKIKX0DER/INV-1/Invoice_INV-1.pdf"
PDF = b"%PDF-1.4\n% invoice INV-1\n%%EOF\n"
SHA = hashlib.sha256(PDF).hexdigest()


@pytest.fixture
def s3() -> StrictS3:
    return StrictS3()


@pytest.fixture
def store(s3: StrictS3, sleeps: Sleeps) -> DocumentStore:
    return DocumentStore(s3, BUCKET, KEY_ARN, sleep=sleeps)  # type: ignore[arg-type]


def test_a_new_document_is_stored_by_a_role_without_list_bucket(store: DocumentStore, s3: StrictS3) -> None:
    """The write comes first: nothing asks S3 about a key that does not exist yet (that answers 403 on AWS)."""
    stored = store.put_bytes_once(KEY, PDF, "application/pdf")
    assert (stored.key, stored.sha256, stored.size) == (KEY, SHA, len(PDF))
    assert s3.calls == [("PutObject", KEY)]
    assert [v["Body"] for v in s3.versions[KEY]] == [PDF]


def test_storing_the_same_bytes_again_looks_only_after_the_412_and_adds_no_version(
    store: DocumentStore, s3: StrictS3
) -> None:
    store.put_bytes_once(KEY, PDF, "application/pdf")
    again = store.put_bytes_once(KEY, PDF, "application/pdf")  # a retried step
    assert again.sha256 == SHA
    assert s3.calls[1:] == [("PutObject", KEY), ("HeadObject", KEY)]  # refused (412), then looked at
    assert len(s3.versions[KEY]) == 1


def test_other_bytes_under_the_key_become_a_new_version(store: DocumentStore, s3: StrictS3) -> None:
    store.put_bytes_once(KEY, b"%PDF-1.4 older\n", "application/pdf")
    store.put_bytes_once(KEY, PDF, "application/pdf")
    assert [v["Body"] for v in s3.versions[KEY]] == [b"%PDF-1.4 older\n", PDF]


def test_a_409_conflict_is_retried_after_a_jittered_backoff(store: DocumentStore, s3: StrictS3, sleeps: Sleeps) -> None:
    s3.conflicts = 2
    stored = store.put_bytes_once(KEY, PDF, "application/pdf")
    assert stored.sha256 == SHA and len(s3.versions[KEY]) == 1
    assert s3.calls == [("PutObject", KEY)] * 3
    assert len(sleeps.calls) == 2
    for attempt, slept in enumerate(sleeps.calls, start=1):
        assert 0 <= slept <= min(WRITE_CONFLICT_RETRY.max_delay, WRITE_CONFLICT_RETRY.base_delay * 2 ** (attempt - 1))


def test_a_409_lost_to_a_writer_of_the_same_bytes_is_treated_like_a_412(store: DocumentStore, s3: StrictS3) -> None:
    """Two attempts of one invoice race: the other one's object lands, ours answers 409, the retry answers 412."""
    s3.conflicts = 1
    s3.write_meanwhile[KEY] = PDF
    stored = store.put_bytes_once(KEY, PDF, "application/pdf")
    assert stored.sha256 == SHA
    assert s3.calls == [("PutObject", KEY), ("PutObject", KEY), ("HeadObject", KEY)]
    assert len(s3.versions[KEY]) == 1


def test_409s_past_the_cap_look_for_the_other_writers_object(
    store: DocumentStore, s3: StrictS3, sleeps: Sleeps
) -> None:
    s3.conflicts = WRITE_CONFLICT_RETRY.max_attempts
    s3.write_meanwhile[KEY] = PDF
    assert store.put_bytes_once(KEY, PDF, "application/pdf").sha256 == SHA
    assert s3.calls[-1] == ("HeadObject", KEY)
    assert s3.calls.count(("PutObject", KEY)) == WRITE_CONFLICT_RETRY.max_attempts
    assert len(sleeps.calls) == WRITE_CONFLICT_RETRY.max_attempts - 1
    assert len(s3.versions[KEY]) == 1


def test_409s_past_the_cap_with_no_object_there_are_a_storage_error(
    store: DocumentStore, s3: StrictS3, sleeps: Sleeps
) -> None:
    """A StorageError is what the state machine retries later; the write loop itself stops at its cap."""
    s3.conflicts = 100
    with pytest.raises(StorageError, match="409 ConditionalRequestConflict 5 times"):
        store.put_bytes_once(KEY, PDF, "application/pdf")
    assert s3.calls.count(("PutObject", KEY)) == WRITE_CONFLICT_RETRY.max_attempts
    assert len(sleeps.calls) == WRITE_CONFLICT_RETRY.max_attempts - 1
    assert KEY not in s3.versions


def test_the_calls_match_s3s_own_model(sleeps: Sleeps) -> None:
    """The same sequence through a real boto3 client (Stubber checks every parameter against S3's API model):
    409 is retried, a 412 is looked at with HeadObject, the same sha256 means done."""
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    store = DocumentStore(client, BUCKET, KEY_ARN, sleep=sleeps)
    put = {
        "Bucket": BUCKET,
        "Key": KEY,
        "Body": PDF,
        "ContentType": "application/pdf",
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": KEY_ARN,
        "ChecksumAlgorithm": "SHA256",
        "Metadata": {"sha256": SHA},
        "IfNoneMatch": "*",
    }
    with Stubber(client) as stub:
        stub.add_client_error("put_object", "ConditionalRequestConflict", http_status_code=409, expected_params=put)
        stub.add_client_error("put_object", "PreconditionFailed", http_status_code=412, expected_params=put)
        stub.add_response("head_object", {"Metadata": {"sha256": SHA}}, {"Bucket": BUCKET, "Key": KEY})
        assert store.put_bytes_once(KEY, PDF, "application/pdf").sha256 == SHA
        stub.assert_no_pending_responses()
    assert len(sleeps.calls) == 1
