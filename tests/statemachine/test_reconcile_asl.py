"""The one ASL definition: its placeholders, and its run by moto's interpreter with the real handlers."""

from __future__ import annotations

import json
import re
from typing import Any

from helpers import ROOT, start_execution, stored_summary, wait_for_execution, window_of

from abrecon_sandbox.aws.local_aws import LocalAws
from abrecon_sandbox.aws.stack import load_template
from abrecon_sandbox.emulator import Emulator

ASL = ROOT / "statemachine" / "reconcile.asl.json"


def _machine() -> dict[str, Any]:
    resources = load_template(ROOT / "template.yaml")["Resources"]
    machines = [r for r in resources.values() if r["Type"] == "AWS::Serverless::StateMachine"]
    assert len(machines) == 1
    props: dict[str, Any] = machines[0]["Properties"]
    return props


def test_every_placeholder_has_a_substitution_and_every_substitution_is_used() -> None:
    placeholders = set(re.findall(r"\$\{([^}]+)\}", ASL.read_text()))
    substitutions = set(_machine()["DefinitionSubstitutions"])
    assert placeholders == substitutions


def test_the_template_deploys_this_file() -> None:
    assert (ROOT / _machine()["DefinitionUri"]).resolve() == ASL.resolve()


def test_every_task_failure_in_the_item_workflow_is_caught() -> None:
    definition = json.loads(ASL.read_text())
    maps = [s for s in definition["States"].values() if s["Type"] == "Map"]
    states = maps[0]["ItemProcessor"]["States"]
    for name, state in states.items():
        if state["Type"] == "Task":
            assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), name


def _run(local_aws: LocalAws, emulator: Emulator, name: str, deadline: float = 120) -> dict[str, Any]:
    return wait_for_execution(local_aws, start_execution(local_aws, name, window_of(emulator)), deadline)


def test_execution_stores_every_invoice_and_a_rerun_asks_for_nothing_twice(
    local_aws: LocalAws, emulator: Emulator
) -> None:
    first = _run(local_aws, emulator, "asl-first")
    assert first["status"] == "SUCCEEDED", first.get("cause")
    summary = stored_summary(local_aws, first)
    assert summary["invoices"] == len(emulator.invoice_numbers())
    assert summary["documentsStored"] == sum(len(d) for d in emulator.expected_documents().values())
    assert summary["failed"] == 0 and summary["deferred"] == 0
    reports_after_first = emulator.stats()["apiCalls"].get("createReport", 0)

    second = _run(local_aws, emulator, "asl-second")
    assert second["status"] == "SUCCEEDED", second.get("cause")
    again = stored_summary(local_aws, second)
    assert again["alreadyStored"] == summary["invoices"]
    assert again["documentsStored"] == 0
    assert emulator.stats()["apiCalls"].get("createReport", 0) == reports_after_first
