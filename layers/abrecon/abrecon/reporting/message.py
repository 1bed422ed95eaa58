"""The finance notification: the SNS subject and the plain-text message a person reads at a glance."""

from __future__ import annotations

from collections.abc import Sequence

from abrecon.reporting.formatting import (
    aging_text,
    describe_window,
    format_amount,
    payment_errors,
    plural,
    rate_text,
    s3_uri,
    short_window,
)
from abrecon.reporting.model import Outcome, Problem, Report, Status

SNS_SUBJECT_LIMIT = 100
MESSAGE_LIST_LIMIT = 20


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def _arrived(report: Report) -> tuple[int, int, str]:
    """Invoices and credit memos that arrived with this run, and the verb for them."""
    if not report.pdfs_requested:  # invoice data only: what Amazon listed
        return report.count(credit_memos=False), report.count(credit_memos=True), "found (PDFs not requested)"
    invoices = report.count(credit_memos=False, status=Status.STORED, stored_earlier=False)
    memos = report.count(credit_memos=True, status=Status.STORED, stored_earlier=False)
    return invoices, memos, "stored"


def trouble(report: Report) -> str:
    """What needs a person, in a few words: "1 invoice failed, 2 invoices flagged by JP tax checks"."""
    parts = []
    if report.failures:
        parts.append(f"{plural(len(report.failures), 'invoice')} failed")
    if report.flags:
        parts.append(f"{plural(len(report.flags), 'invoice')} flagged by JP tax checks")
    return ", ".join(parts)


def finance_subject(report: Report) -> str:
    """The SNS subject: ASCII, at most 100 characters, the outcome first; less important parts go when it is long."""
    window = short_window(report.window_start, report.window_end)
    invoices, memos, verb = _arrived(report)
    verb = verb.split(" (")[0]
    arrived = plural(invoices, "invoice") + (f" + {plural(memos, 'credit memo')}" if memos else "") + f" {verb}"
    head = f"Amazon Business {window}"
    if report.outcome is Outcome.ACTION_NEEDED:
        head = f"ACTION NEEDED: {head}"
        candidates = [f"{head}: {trouble(report)}; {arrived}", f"{head}: {trouble(report)}"]
    elif report.outcome is Outcome.INCOMPLETE:
        to_follow = len(report.deferrals) + report.pending_lines
        candidates = [f"{head}: {arrived}, {to_follow} to follow", f"{head}: {to_follow} to follow"]
    else:
        candidates = [f"{head}: {arrived}, nothing missing", f"{head}: all {invoices + memos} stored"]
    for text in map(_ascii, candidates):
        if len(text) <= SNS_SUBJECT_LIMIT:
            return text
    return candidates[-1][: SNS_SUBJECT_LIMIT - 3] + "..."


def _listed(problems: Sequence[Problem]) -> list[str]:
    lines = [f"    - {p.invoice_number}: {p.reason}" for p in problems[:MESSAGE_LIST_LIMIT]]
    if len(problems) > MESSAGE_LIST_LIMIT:
        lines.append(f"    ... and {len(problems) - MESSAGE_LIST_LIMIT} more (see the report)")
    return lines


def finance_message(report: Report, *, summary_key: str) -> str:
    """The SNS message body: plain text a person reads at a glance, most important first."""
    lines = [f"Amazon Business invoices for {describe_window(report.window_start, report.window_end)}", ""]
    lines += _headline(report)
    lines += _purchase_lines(report)
    lines += _payment_lines(report)
    lines += _attention_lines(report)
    lines += [
        "",
        "The report:",
        f"  Spreadsheet (CSV): {s3_uri(report.bucket, report.csv_key)}",
        f"  Web page (HTML):   {s3_uri(report.bucket, report.html_key)}",
        f"  PDFs:              {s3_uri(report.bucket, 'documents/')}",
        "  One invoice's PDF: abrecon invoices get INVOICE-NUMBER --out invoice.pdf",
        "",
        f"Run {report.run_id}; summary data: {s3_uri(report.bucket, summary_key)}",
    ]
    return "\n".join(lines)


def _headline(report: Report) -> list[str]:
    """The outcome and what arrived; a word on the documents earlier runs had stored."""
    invoices, memos, verb = _arrived(report)
    arrived = f"{plural(invoices, 'invoice')} and {plural(memos, 'credit memo')} {verb}"
    if report.pdfs_requested:
        arrived += f" ({plural(report.pdfs_stored, 'PDF')})"
    headline = {
        Outcome.OK: f"All done: {arrived}.",
        Outcome.INCOMPLETE: f"{arrived}. Nothing failed; some documents follow with a later run.",
        Outcome.ACTION_NEEDED: f"Action needed: {trouble(report)}. {arrived[0].upper()}{arrived[1:]}.",
    }[report.outcome]
    lines = [headline, ""]
    earlier = report.documents_stored_earlier
    if earlier:
        lines += [f"{plural(earlier, 'document')} of this period had been stored by earlier runs already.", ""]
    return lines


def _purchase_lines(report: Report) -> list[str]:
    """Charged, refunded and net per currency, the tax by rate, and where charges and invoices differ."""
    lines = [f"Purchases in this period ({plural(len(report.lines), 'line item')}):"]
    for t in report.totals:
        lines.append(
            f"  {t.currency}: charged {format_amount(t.charged, t.currency)}, refunded "
            f"{format_amount(-t.refunded, t.currency)}, net {format_amount(t.net, t.currency)}"
        )
        if t.tax:
            taxes = ", ".join(
                f"{rate_text(rate)}: {format_amount(a.tax, t.currency)} on {format_amount(a.taxable, t.currency)}"
                for rate, a in sorted(t.tax.items(), reverse=True)
            )
            lines.append(f"  {t.currency} tax by rate: {taxes}")
        if t.difference:
            lines.append(
                f"  {t.currency}: charged and invoiced differ by {format_amount(t.difference, t.currency)}; "
                "see the report"
            )
    if not report.totals:
        lines.append("  none")
    return lines


def _attention_lines(report: Report) -> list[str]:
    """Failures, JP flags, deferrals and line items without an invoice, each with its invoices listed."""
    lines = ["", "Needs attention:"]
    if report.failures:
        lines.append(f"  Failed ({len(report.failures)}), someone should look:")
        lines += _listed(report.failures)
    if report.flags:
        lines.append(
            f"  Flagged by the tax-qualified invoice checks (JP) ({len(report.flags)} of {report.checked} checked); "
            "ask the seller for a corrected invoice before claiming its input tax:"
        )
        lines += _listed(report.flags)
    if report.deferrals:
        lines.append(f"  Deferred to the next run ({len(report.deferrals)}), Amazon is still preparing the PDF:")
        lines += _listed(report.deferrals)
    if report.pending_lines:
        unshipped = f", {report.unshipped_lines} of them not shipped yet" if report.unshipped_lines else ""
        lines.append(
            f"  {plural(report.pending_lines, 'line item')} without an invoice yet{unshipped} (Amazon issues it "
            "when the item ships; a later run picks it up)"
        )
    if report.outcome is Outcome.OK:
        lines.append("  nothing" + (f" ({report.checked} JP tax invoices checked, all fine)" if report.checked else ""))
    return lines


def _payment_lines(report: Report) -> list[str]:
    """The finance message's payment paragraph: how many invoices are past due, their total, the oldest due date."""
    payments = report.payments
    if payments is None:
        return []
    overdue = payments.past_due
    if not overdue.count:
        lines = ["", "Past due: none."]
    else:
        totals = ", ".join(f"{c} {format_amount(v, c)}" for c, v in overdue.totals.items()) or "amount unknown"
        oldest = overdue.oldest_due_date
        lines = [
            "",
            f"Past due: {plural(overdue.count, 'invoice')}, {totals}"
            + (f"; the oldest was due {oldest.isoformat()}" if oldest else "")
            + ":",
        ]
        lines += _listed(
            [
                Problem(
                    r.invoice_number,
                    f"due {r.due_date.isoformat() if r.due_date else '?'}, "
                    f"{r.currency or ''} {format_amount(r.amount, r.currency) or 'amount unknown'}".replace("  ", " "),
                )
                for r in overdue.records
            ]
        )
    for a in payments.aging:
        lines.append(f"  {a.currency} unpaid by days past due: {aging_text(a.amounts, a.currency, format_amount)}")
    errors = payment_errors(payments)
    if errors:
        lines.append(
            f"  Payment status unavailable for {plural(errors, 'invoice')} (see the report); asked again next run"
        )
    if payments.failure:
        lines.append(f"  Payment status was not checked completely: {payments.failure}")
    return lines
