"""JP tax-qualified invoice checks over the emulator's JP data set (consistent, and broken on purpose), fetched over
HTTP through the real client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from abrecon.auth import LwaTokenProvider
from abrecon.client import AmazonBusinessClient
from abrecon.invoices import fetch_invoice_details
from abrecon.jp_checks import check_invoices
from abrecon.models import InvoiceDetail, OrderLineItemKey
from abrecon_sandbox.emulator import Emulator, EmulatorConfig

# --- the emulator's JP data set, over HTTP through the real client ---------------------------------


@pytest.fixture(scope="module")
def jp_emulator() -> Iterator[Emulator]:
    config = EmulatorConfig(region="JP", seed=5, orders=20, speed=600.0, jp_inconsistent_invoices=5)
    with Emulator(config) as emulator:
        yield emulator


def _all_details(emulator: Emulator) -> list[InvoiceDetail]:
    credentials = emulator.credentials
    tokens = LwaTokenProvider("jp-test", emulator.lwa_url, secret_loader=lambda _: credentials)
    client = AmazonBusinessClient(emulator.base_url, tokens)
    config = emulator.config
    keys: list[OrderLineItemKey] = []
    for transaction in client.iter_transactions(config.window_start, config.window_end):
        keys += [item.key for item in transaction.transactionLineItems if item.key is not None]
    return list(fetch_invoice_details(client, keys).invoices.values())


def test_emulator_jp_data_set_flags_exactly_the_deliberate_inconsistencies(jp_emulator: Emulator) -> None:
    details = _all_details(jp_emulator)
    broken = jp_emulator.deliberate_inconsistencies()
    assert len(broken) == 5
    result = check_invoices(details)
    assert result.checked == len(details) > len(broken)
    assert {f.invoice_number for f in result.flags} == set(broken)
