"""check-payments: the payment status and due date of the run's invoices, and of earlier runs' unpaid ones.

getBatchInvoicePaymentDetails answers for up to 25 invoices a call, at 2 a second (burst 10) per account, paced
through the shared token bucket. The list to ask about is written once (`runs/<runId>/payment-targets.json`);
an invocation works through it in batches until its time is nearly up and hands the rest to the next one (the
state machine loops while `more`). An ERROR result, or a call that fails after the client's retries, is recorded
for the invoices concerned with the reason, never failing the run; the next run asks again.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import Field

from abrecon.client import MAX_INVOICES_PER_PAYMENT_CALL
from abrecon.contracts import LineItemRow, PaymentsProgress, RunContext, StepModel
from abrecon.errors import ApiError
from abrecon.line_items import match_key
from abrecon.models import ErrorDetail, InvoiceDetail, InvoicePaymentDetailResult
from abrecon.payment_status import (
    STATUS_ERROR,
    PaymentRecord,
    open_payments,
    read_payments,
    write_payments,
)
from abrecon.run_files import read_details, run_key
from abrecon.runtime import Runtime

logger = Logger(child=True)


class PaymentTarget(StepModel):
    """An invoice to ask about, with what its payment entry keeps of it (date, amount, currency)."""

    invoice_number: str = Field(alias="invoiceNumber", min_length=1)
    invoice_date: date | None = Field(default=None, alias="invoiceDate")
    amount: Decimal | None = None
    currency: str | None = None


def check_payments(run: RunContext, rt: Runtime) -> PaymentsProgress:
    """Ask for the payment details of the next invoices on the run's list, as many batches as time allows."""
    now = datetime.now(UTC)
    resumed = run.payments if run.payments and run.payments.get("more") else None
    if resumed is None:
        targets = payment_targets(run, rt, now.date())
        key = run_key(run.run_id, "payment-targets.json")
        rt.store.put_json(key, [t.model_dump(mode="json", by_alias=True) for t in targets])
        done = 0
    else:
        progress = PaymentsProgress.model_validate(resumed)
        key, done = progress.targets_key, progress.done
        targets = [PaymentTarget.model_validate(t) for t in rt.store.get_json(key)]
    statuses: Counter[str] = Counter()
    first = True
    while done < len(targets) and (first or not rt.budget.exhausted()):  # at least one batch: always progress
        batch = targets[done : done + MAX_INVOICES_PER_PAYMENT_CALL]
        records = _check_batch(rt, batch, run.run_id, now)
        write_payments(rt.ledger, records)
        statuses.update(r.status for r in records)
        done += len(batch)
        first = False
    if statuses.get(STATUS_ERROR):
        logger.warning("payment details: ERROR for some invoices", extra={"errors": statuses[STATUS_ERROR]})
    return PaymentsProgress(
        targets_key=key, total=len(targets), done=done, more=done < len(targets), statuses=dict(statuses)
    )


def payment_targets(run: RunContext, rt: Runtime, today: date) -> list[PaymentTarget]:
    """The run's invoices (not its credit memos), then every earlier invoice not yet Closed within the lookback.

    Unpaid entries older than the lookback (by invoice date) leave the open index: no later run asks again.
    """
    rows = [LineItemRow.model_validate(r) for r in rt.store.get_json(run.line_items_key)]
    matches: dict[str, list[str]] = rt.store.get_json(run_key(run.run_id, "matches.json"))
    details = read_details(rt.store, (n for numbers in matches.values() for n in numbers))
    invoices = {n: d for n, d in details.items() if not d.is_credit_memo}
    charged, currencies = _charges(rows, matches, invoices)
    targets = [
        PaymentTarget(
            invoice_number=number,
            invoice_date=detail.invoiceDate.date(),
            amount=detail.invoiceTotal if detail.invoiceTotal is not None else charged.get(number),
            currency=detail.currencyCode or currencies.get(number),
        )
        for number, detail in sorted(invoices.items())
    ]
    cutoff = today - timedelta(days=rt.settings.payment_lookback_days)
    stale: list[dict[str, Any]] = []
    for record in sorted(open_payments(rt.ledger), key=lambda r: r.invoice_number):
        if record.invoice_number in invoices:
            continue
        if record.invoice_date is not None and record.invoice_date < cutoff:
            note = f"older than the {rt.settings.payment_lookback_days}-day lookback: no longer asked"
            stale.append({k: v for k, v in record.as_item().items() if k != "openKind"} | {"reason": note})
            continue
        targets.append(PaymentTarget.model_validate(record, from_attributes=True))
    if stale:
        rt.ledger.put_items(stale)
    return targets


def _charges(
    rows: list[LineItemRow], matches: dict[str, list[str]], invoices: dict[str, InvoiceDetail]
) -> tuple[dict[str, Decimal], dict[str, str]]:
    """What Amazon charged per invoice (for invoices without an invoiceTotal), and in which currency.

    A charge counts once, towards the first invoice of its line item, so the totals add up to what was charged.
    """
    charged: dict[str, Decimal] = {}
    currencies: dict[str, str] = {}
    for row in rows:
        if row.amount is None or row.amount <= 0:  # refunds have credit memos, not payment terms
            continue
        own = [n for n in matches.get(match_key(row), []) if n in invoices]  # shipment-less rows too
        if own:
            charged[own[0]] = charged.get(own[0], Decimal(0)) + row.amount
            if row.currency:
                currencies.setdefault(own[0], row.currency)
    return charged, currencies


def _check_batch(rt: Runtime, batch: list[PaymentTarget], run_id: str, now: datetime) -> list[PaymentRecord]:
    """One call for up to 25 invoices; every invoice gets an entry, an ERROR one with the reason if need be."""
    ids = [t.invoice_number for t in batch]
    before = read_payments(rt.ledger, ids)
    failed: str | None = None
    answers: dict[str, InvoicePaymentDetailResult] = {}
    try:
        answers = {r.invoiceId: r for r in rt.api.get_invoice_payment_details(ids)}
    except ApiError as exc:  # after the client's own retries: record it, the next run asks again
        failed = f"getBatchInvoicePaymentDetails failed: {exc}"
        logger.warning("payment details call failed", extra={"invoices": len(ids), "error": str(exc)})
    records = []
    for target in batch:
        answer = answers.get(target.invoice_number)
        status, reason = STATUS_ERROR, failed
        due: date | None = None
        if answer is not None and answer.succeeded and answer.paymentDetails is not None:
            status, reason = answer.paymentDetails.status, None
            due_at = answer.paymentDetails.dueDate
            due = due_at.date() if due_at is not None else None
        elif answer is not None and answer.resultType.upper() == "SUCCESS":
            reason = "Amazon answered SUCCESS without the payment details"
        elif answer is not None:
            reason = _error_reason(answer.error)
        elif failed is None:
            reason = "Amazon's answer has no result for this invoice"
        if status == STATUS_ERROR and target.invoice_number in before:
            due = before[target.invoice_number].due_date  # keep the due date an earlier check found
        records.append(
            PaymentRecord(
                **target.model_dump(),
                status=status,
                due_date=due,
                checked_at=now,
                reason=reason,
                run_id=run_id,
            )
        )
    return records


def _error_reason(error: ErrorDetail | None) -> str:
    """Amazon's reason for an ERROR result: "code: message (details)"."""
    if error is None:
        return "Amazon answered ERROR without a reason"
    text = ": ".join(p for p in (error.code, error.message) if p) or "Amazon answered ERROR"
    return f"{text} ({error.details})" if error.details else text
