"""What the per-invoice steps share: whether this execution may work on the invoice, and the rate-limit slot its
next request to Amazon goes out on."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from abrecon.contracts import Owner
from abrecon.runtime import Runtime
from abrecon.storage import InvoiceRecord, InvoiceState

logger = Logger(child=True)


def rate_limit_slot(operation: str, reserved_at: float | None, rt: Runtime, holder: str = "") -> tuple[float, float]:
    """The rate-limit slot to use: (seconds still to wait, the moment it opens); reserves one if none is held.

    A held slot that is open is spent here, once: a step the state machine retries (same input, same slot) after
    its request went out gets a new slot instead of sending a second request on the first one's.
    """
    spent = (
        reserved_at is not None
        and reserved_at <= rt.ledger.now()
        and not rt.pacer.spend(operation, reserved_at, holder)
    )
    if spent:
        logger.info("rate-limit slot already spent by an earlier attempt", extra={"operation": operation})
        reserved_at = None
    if reserved_at is None:
        rt.api.warm_up()  # a cold start's token exchange must not sit between the reservation and the request
        reserved_at = rt.pacer.reserve(operation)
        logger.info("reserved a rate-limit slot", extra={"operation": operation, "opensAt": reserved_at})
    return max(0.0, reserved_at - rt.ledger.now()), reserved_at


def owner_status(record: InvoiceRecord | None, run_id: str, rt: Runtime) -> Owner | None:
    """Why this execution must leave the invoice alone, if it must."""
    if record is None:
        return None
    if record.state is InvoiceState.STORED:
        return "ALREADY_STORED"
    if record.state is InvoiceState.FAILED and record.terminal:
        return "ALREADY_FAILED"
    if record.owned_by_other(run_id, rt.ledger.now(), rt.settings.claim_stale_seconds):
        if rt.executions is not None and rt.executions.has_ended(record.run_id):
            logger.info("taking over an invoice whose execution has ended", extra={"claimedBy": record.run_id})
            return None
        return "OWNED_ELSEWHERE"
    return None
