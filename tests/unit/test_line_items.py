"""Every transaction line item Amazon lists is one row: repeats collapse, shipment-less ones are kept and matched
once they ship (abrecon.line_items, steps.line_item_rows, and the report's NOT_SHIPPED status)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from abrecon import line_items, reporting, steps
from abrecon.contracts import LineItemRow
from abrecon.models import Transaction
from abrecon.reporting import Outcome, Status
from abrecon.storage import line_item_pk

START = datetime(2026, 11, 14, tzinfo=UTC)
END = datetime(2026, 11, 21, tzinfo=UTC)


def _row(tx: str, line: str, ship: str | None, amount: str = "10.00", kind: str = "CHARGE") -> LineItemRow:
    return LineItemRow.model_validate(
        {
            "transactionId": tx,
            "transactionType": kind,
            "transactionDate": "2026-11-15 10:00:00+00:00",
            "orderId": "111-1",
            "orderLineItemId": line,
            "shipmentId": ship,
            "amount": amount,
            "currency": "USD",
        }
    )


def _transaction(tx: str, *lines: dict[str, Any]) -> Transaction:
    return Transaction.model_validate(
        {
            "transactionId": tx,
            "transactionType": "CHARGE",
            "transactionLineItems": [
                {"orderId": "111-1", "totalAmount": {"currencyCode": "USD", "amount": "5.00"}, **line} for line in lines
            ],
        }
    )


def test_a_line_item_without_a_shipment_is_kept_with_what_amazon_gave() -> None:
    rows = steps.line_item_rows(
        _transaction("T1", {"orderLineItemId": "L1", "shipmentId": "S1"}, {"orderLineItemId": "L2"})
    )
    assert [(r.order_line_item_id, r.shipment_id) for r in rows] == [("L1", "S1"), ("L2", None)]
    assert rows[1].key is None, "no triple: it cannot be asked about"
    assert rows[1].ledger_pk == "LINE#111-1|L2" == line_item_pk("111-1", "L2", None)
    assert rows[0].ledger_pk == "LINE#111-1|L1|S1"
    assert rows[1].amount == Decimal("5.00")


def test_a_repeated_transaction_is_one_row_but_a_charge_and_its_refund_are_two() -> None:
    charge, refund = _row("T1", "L1", "S1"), _row("T2", "L1", "S1", "-4.00", "REFUND")
    repeated = [charge, _row("T3", "L2", "S2"), charge.model_copy(update={"amount": Decimal("10.00")}), refund]
    assert line_items.distinct(repeated) == [charge, _row("T3", "L2", "S2"), refund]


def test_a_repeat_that_now_carries_the_shipment_replaces_the_shipmentless_sighting() -> None:
    before, after = _row("T1", "L1", None), _row("T1", "L1", "S1")
    assert line_items.distinct([before, _row("T2", "L2", None), after]) == [_row("T2", "L2", None), after]


def test_a_carried_shipmentless_row_is_closed_when_its_transaction_is_listed_with_the_shipment() -> None:
    waiting = [_row("T1", "L1", None), _row("T9", "L1", None), _row("T2", "L2", None)]
    still, shipped = line_items.shipped_elsewhere(waiting, [_row("T1", "L1", "S1")])
    assert shipped == [_row("T1", "L1", None)]
    assert still == [_row("T9", "L1", None), _row("T2", "L2", None)], "another transaction stays its own row"


def test_a_shipmentless_row_gets_the_documents_of_its_line_items_shipments() -> None:
    rows = [_row("T1", "L1", "S1"), _row("T9", "L1", None), _row("T2", "L2", None)]
    matches = line_items.with_shipmentless_matches({"111-1|L1|S1": ["INV-1", "CM-1"]}, rows)
    assert matches == {"111-1|L1|S1": ["INV-1", "CM-1"], "111-1|L1|": ["INV-1", "CM-1"]}
    assert line_items.match_key(_row("T2", "L2", None)) == "111-1|L2|" and "111-1|L2|" not in matches


def test_the_report_shows_a_shipmentless_line_item_as_not_shipped_with_its_amount_in_the_totals() -> None:
    report = reporting.build_report(
        run_id="r",
        window_start=START,
        window_end=END,
        generated_at=END,
        bucket="b",
        csv_key="runs/r/report.csv",
        html_key="runs/r/report.html",
        line_items=[_row("T1", "L1", None, "12.50")],
        matches={},
        details={},
        records={},
        targets=[],
        requested_this_run=[],
        failures=[],
        deferrals=[],
    )
    (line,) = report.lines
    assert line.status is Status.NOT_SHIPPED and "not shipped" in line.reason
    assert line.shipment_id == ""
    assert report.totals[0].charged == Decimal("12.50") and report.totals[0].statuses[Status.NOT_SHIPPED] == 1
    assert report.outcome is Outcome.INCOMPLETE and report.pending_lines == 1
    assert "1 of them not shipped yet" in reporting.finance_message(report, summary_key="runs/r/summary.json")
    assert ",NOT_SHIPPED," in reporting.render_csv(report).decode("utf-8-sig")
    assert "1 to follow" in reporting.finance_subject(report)
