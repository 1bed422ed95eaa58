"""The report as one HTML page, rendered with Jinja2 from templates/report.html.j2 (its CSS, report.css, inlined)."""

from __future__ import annotations

import html
from datetime import UTC
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from abrecon.payment_status import AGING_BUCKETS, status_text
from abrecon.reporting.formatting import (
    check_text,
    describe_window,
    format_amount,
    payment_errors,
    plural,
    rate_text,
    s3_uri,
)
from abrecon.reporting.message import trouble
from abrecon.reporting.model import Outcome, Report, Status, TaxAmounts

TEMPLATE = "report.html.j2"

_OUTCOME_TEXT = {
    Outcome.OK: "Everything is here: every document of this period is stored.",
    Outcome.INCOMPLETE: "Nothing failed, but some documents are still to come with a later run.",
}


def _escaped(value: object) -> Markup:
    """Every value the template prints, escaped as html.escape does (&quot;, &#x27;), as the page always was.

    Jinja2 would escape anyway (autoescape), with markupsafe's &#34; and &#39;: this keeps the page's bytes.
    """
    if isinstance(value, Markup):  # a macro's output, escaped already
        return value
    return Markup(html.escape(str(value), quote=True))  # noqa: S704  # nosec B704 # escaped right here


# The page's templates: every value escaped unless it is Markup already (autoescape), and a name the template
# uses that the page does not give fails the render instead of printing "" (StrictUndefined).
TEMPLATES = Environment(
    loader=PackageLoader("abrecon.reporting", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    finalize=_escaped,
    keep_trailing_newline=True,  # the page, and the CSS it inlines, end with their files' last newline
)
TEMPLATES.globals.update(
    aging_buckets=AGING_BUCKETS,
    amount=format_amount,
    check_text=check_text,
    payment_status=status_text,
    percent=rate_text,
    plural=plural,
    s3_uri=s3_uri,
    zero=TaxAmounts(),
)


def _relative_href(report_key: str, key: str) -> str:
    """A link from the report to a PDF that works wherever the bucket's layout is mirrored (sync, export)."""
    depth = report_key.count("/")
    return "../" * depth + key


def _glance(report: Report) -> list[tuple[str, str]]:
    """The counts at the top of the page, (label, value)."""
    items = [
        ("Line items", str(len(report.lines))),
        ("Invoices arrived", str(report.count(credit_memos=False, status=Status.STORED, stored_earlier=False))),
        ("Credit memos arrived", str(report.count(credit_memos=True, status=Status.STORED, stored_earlier=False))),
        ("Stored earlier", str(report.documents_stored_earlier)),
        ("Failed", str(len(report.failures))),
        ("Deferred", str(len(report.deferrals))),
        ("No invoice yet", str(report.pending_lines)),
    ]
    if report.checked:
        items.append(("Flagged by the JP checks", f"{len(report.flags)} of {report.checked}"))
    return items


def _outcome_text(report: Report) -> str:
    if report.outcome is not Outcome.ACTION_NEEDED:
        return _OUTCOME_TEXT[report.outcome]
    return f"Action needed: {trouble(report)} (see below)."


def page_values(report: Report) -> dict[str, Any]:
    """What the template is given: the report, and the texts and figures worked out in Python."""
    payments = report.payments
    overdue = payments.past_due if payments is not None else None
    return {
        "report": report,
        "window": describe_window(report.window_start, report.window_end),
        "generated": report.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "outcome_text": _outcome_text(report),
        "glance": _glance(report),
        "nothing_needs_attention": not (
            report.failures or report.deferrals or report.flags or report.pending_lines or not report.pdfs_requested
        ),
        "document_note": (
            " Document totals and tax by rate are shown once per document, on its first line item, so each column"
            " adds up; credit memos count negative."
            if report.has_document_totals or report.tax_rates
            else ""
        ),
        "pdf_href": lambda key: _relative_href(report.html_key, key),
        "payments": payments,
        "overdue": overdue,
        "past_due_totals": ", ".join(f"{format_amount(v, c)} {c}" for c, v in overdue.totals.items())
        if overdue is not None
        else "",
        "payment_errors": payment_errors(payments) if payments is not None else 0,
    }


def render_html(report: Report) -> bytes:
    """The report as one self-contained HTML page: no scripts, no external assets, printable (A4 landscape)."""
    return TEMPLATES.get_template(TEMPLATE).render(page_values(report)).encode("utf-8")
