"""Nothing asked for twice when Amazon's answers are lost, and recovery of what ages or dies (issue 11, items 4-5).

The steps run in-process against moto (resources from template.yaml) with the real ledger and bucket; Amazon is
a stub that keeps the reports it made, so a lost createReport answer still leaves its report behind. Each test's
ledger clock is far from every other test's, so their createReport attempts never share a time window.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers import function_environment

from abrecon import contracts, lost_reports, steps
from abrecon.errors import AnswerLostError, DocumentError, NotFoundError
from abrecon.executions import ExecutionLookup
from abrecon.models import Report, ReportDocument, ReportsPage
from abrecon.pacing import Pacer
from abrecon.runtime import Runtime, get_runtime
from abrecon.storage import InvoiceRecord, InvoiceState, Ledger, LedgerConflict
from abrecon_sandbox.aws.faults import _DYNAMODB_5XX, ServiceFaults
from abrecon_sandbox.aws.local_aws import LocalAws

PDF = b"%PDF-1.4\n% invoice\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
_EPOCHS = itertools.count(1)


@pytest.fixture
def rt(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """The create-report function's runtime in this process, with a ledger clock of the test's own and no pacing."""
    monkeypatch.setattr(lost_reports, "SETTLE_SECONDS", 0.0)
    with function_environment(local_aws, monkeypatch, "CreateReportFunction"):
        base = get_runtime()
        offset = next(_EPOCHS) * 10_000_000.0
        clock = Clock(offset)
        ledger = Ledger(local_aws.resource("dynamodb"), base.settings.ledger_table, clock=clock)
        yield dataclasses.replace(base, ledger=ledger, pacer=Pacer(ledger.table, {}, clock=clock))


class Clock:
    """time.time() moved by a fixed offset, plus whatever a test adds."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def __call__(self) -> float:
        import time

        return time.time() + self.offset


class Amazon:
    """createReport that makes its report and then (for the first `lose` calls) loses the answer; getReports."""

    def __init__(self, rt: Runtime, *, lose: int = 1, labelled: bool = True, crash: bool = False) -> None:
        self.rt = rt
        self.lose = lose
        self.labelled = labelled
        self.crash = crash
        self.reports: list[Report] = []
        self.attempts_seen: list[Any] = []  # the ledger's attempt at the moment each createReport was sent
        self.lookups = 0

    def warm_up(self) -> None:
        """Nothing to warm up."""

    def make(self, number: str, document_type: str | None = None) -> Report:
        """A report of `number` made now (by the stub's Amazon, answered or not)."""
        options = {"invoiceId": number, **({"documentType": document_type} if document_type else {})}
        report = Report(
            reportId=f"R{len(self.reports) + 1}-{number}",
            processingStatus="IN_QUEUE",  # type: ignore[arg-type]
            reportType="GET_AB_INVOICE_PDF",
            createdTime=datetime.fromtimestamp(self.rt.ledger.now(), UTC),
            reportOptions=options if self.labelled else None,
        )
        self.reports.append(report)
        return report

    def create_report(self, number: str, marketplace_ids: Any, *, document_type: str | None = None) -> str:
        record = self.rt.ledger.get(number)
        self.attempts_seen.append(record.create_attempt_at if record else None)
        report = self.make(number, document_type)
        if self.crash:
            self.crash = False
            raise RuntimeError("the Lambda died while the request was out")
        if len(self.reports) <= self.lose:
            raise AnswerLostError("createReport", 500, "InternalFailure", "We encountered an internal error.")
        return report.reportId

    def get_reports(self, report_types: Any, *, created_since: datetime, page_size: int) -> ReportsPage:
        self.lookups += 1
        assert list(report_types) == ["GET_AB_INVOICE_PDF"] and page_size == lost_reports.PAGE_SIZE
        return ReportsPage(reports=[r for r in self.reports if r.createdTime and r.createdTime >= created_since])


def request(number: str, reserved_at: float | None = None) -> contracts.CreateReportInput:
    return contracts.CreateReportInput(
        invoice=contracts.ReportTarget(invoice_number=number), run_id="run-lost", reserved_at=reserved_at
    )


def run_until_settled(
    rt: Runtime, number: str, reserved_at: float | None = None, limit: int = 6
) -> contracts.CreateReportOutput:
    """Call create-report the way the state machine does: THROTTLED goes round again with its reserved slot."""
    for _ in range(limit):
        out = steps.create_report(request(number, reserved_at), rt)
        if out.status != "THROTTLED":
            return out
        reserved_at = out.reserved_at
    raise AssertionError("create-report stayed THROTTLED")


def test_a_lost_answer_is_found_by_its_invoice_id_and_not_asked_again(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lost_reports, "SETTLE_SECONDS", 2.0)
    amazon = Amazon(rt)
    r = dataclasses.replace(rt, api=amazon)  # type: ignore[arg-type]
    first = steps.create_report(request("LOST-1"), r)
    # The lookup waits in the state machine until reports answered meanwhile are in the ledger.
    assert (first.status, first.wait_seconds, amazon.lookups, len(amazon.reports)) == ("THROTTLED", 2, 0, 1)
    record = r.ledger.get("LOST-1")
    assert record is not None and record.create_attempt_at is not None and record.create_attempt_until is not None
    assert any(item["invoiceNumber"] == "LOST-1" for item in r.ledger.open_items("ATTEMPT"))
    r.ledger._clock.offset += 2.5  # type: ignore[attr-defined]  # the Wait state's seconds
    out = steps.create_report(request("LOST-1", first.reserved_at), r)
    assert (out.status, out.report_id) == ("REQUESTED", "R1-LOST-1")
    assert len(amazon.reports) == 1 and amazon.lookups == 1
    record = r.ledger.get("LOST-1")
    assert record is not None and record.state is InvoiceState.REQUESTED and record.report_id == "R1-LOST-1"
    assert record.create_attempt_at is None and r.ledger.known_reports(["R1-LOST-1"]) == {"R1-LOST-1": "LOST-1"}


def test_the_attempt_is_in_the_ledger_before_the_call(rt: Runtime) -> None:
    amazon = Amazon(rt, lose=0)
    r = dataclasses.replace(rt, api=amazon)  # type: ignore[arg-type]
    assert run_until_settled(r, "LOST-2").status == "REQUESTED"
    assert amazon.attempts_seen[0] is not None
    record = r.ledger.get("LOST-2")
    assert record is not None and record.create_attempt_at is None  # an answered attempt is cleared


def test_a_lambda_that_died_mid_call_looks_before_asking_again(rt: Runtime) -> None:
    amazon = Amazon(rt, lose=0, crash=True)
    r = dataclasses.replace(rt, api=amazon)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        steps.create_report(request("LOST-3"), r)
    out = run_until_settled(r, "LOST-3")  # the state machine's retry
    assert (out.status, out.report_id, len(amazon.reports)) == ("REQUESTED", "R1-LOST-3", 1)


def test_by_creation_time_when_amazon_does_not_echo_the_options(rt: Runtime) -> None:
    amazon = Amazon(rt, labelled=False)
    r = dataclasses.replace(rt, api=amazon)  # type: ignore[arg-type]
    taken = amazon.make("OTHER-4")  # another invoice's report, answered and recorded: not the lost one
    r.ledger.remember_report(taken.reportId, "OTHER-4")
    out = run_until_settled(r, "LOST-4")
    assert (out.status, out.report_id) == ("REQUESTED", "R2-LOST-4")
    assert len(amazon.reports) == 2


def test_two_unknown_reports_in_the_window_identify_nothing_so_it_asks_again(rt: Runtime) -> None:
    amazon = Amazon(rt, labelled=False)
    r = dataclasses.replace(rt, api=amazon)  # type: ignore[arg-type]
    lost = steps.create_report(request("LOST-5"), r)  # answer lost: the lookup is the next step
    amazon.make("STRANGER-5")  # an unknown report in the same window (someone else's lost answer)
    out = run_until_settled(r, "LOST-5", lost.reserved_at)
    assert out.status == "REQUESTED" and out.report_id == "R3-LOST-5"  # asked again: nothing could be told apart
    assert len(amazon.reports) == 3


def test_another_invoices_open_attempt_in_the_window_blocks_matching_by_time(rt: Runtime) -> None:
    amazon = Amazon(rt, labelled=False)
    r = dataclasses.replace(rt, api=amazon)  # type: ignore[arg-type]
    now = r.ledger.now()
    r.ledger.write("NEIGHBOUR-6", None, "run-x", state=InvoiceState.CLAIMED, create_attempt_at=now, open_kind="ATTEMPT")
    out = run_until_settled(r, "LOST-6")
    assert out.report_id == "R2-LOST-6"  # its own report could have been the neighbour's: asked again
    neighbour = r.ledger.get("NEIGHBOUR-6")
    assert neighbour is not None
    r.ledger.write("NEIGHBOUR-6", neighbour, "run-x", state=InvoiceState.FAILED, create_attempt_at=None)


def test_labelled_answers_without_the_invoice_mean_it_was_not_made(rt: Runtime) -> None:
    amazon = Amazon(rt, lose=2)  # OTHER-7's report, then LOST-7's first
    r = dataclasses.replace(rt, api=amazon)  # type: ignore[arg-type]
    amazon.make("OTHER-7")
    lost = steps.create_report(request("LOST-7"), r)
    amazon.reports = [x for x in amazon.reports if "LOST-7" not in x.reportId]  # Amazon did not make it after all
    assert lost.status == "THROTTLED"
    out = run_until_settled(r, "LOST-7", lost.reserved_at)
    assert (out.status, out.report_id, len(amazon.reports)) == ("REQUESTED", "R2-LOST-7", 2)


def test_answers_lost_again_and_again_fail_the_invoice_for_this_run_only(rt: Runtime) -> None:
    amazon = Amazon(rt, lose=100, labelled=True)
    amazon.labelled = True
    r = dataclasses.replace(rt, api=amazon)  # type: ignore[arg-type]
    amazon.get_reports = lambda *a, **k: ReportsPage(reports=[])  # type: ignore[method-assign]  # never found
    with pytest.raises(AnswerLostError) as caught:
        run_until_settled(r, "LOST-8", limit=20)
    assert caught.value.code == "AnswersLost"
    assert len(amazon.reports) == lost_reports.MAX_LOST_ANSWERS
    record = r.ledger.get("LOST-8")
    assert record is not None
    r.ledger.write("LOST-8", record, "run-lost", state=InvoiceState.FAILED, reason="x", create_attempt_at=None)
    # The next run starts with a fresh budget.
    again = steps.create_report(contracts.CreateReportInput(invoice=request("LOST-8").invoice, run_id="run-next"), r)
    assert again.status == "THROTTLED" and len(amazon.reports) == lost_reports.MAX_LOST_ANSWERS + 1


def test_identify_rules() -> None:
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
    attempt = lost_reports.Attempt(at, at + 3)

    def report(rid: str, seconds: float, options: dict[str, str] | None = None) -> Report:
        created = datetime.fromtimestamp(at + seconds, UTC)
        return Report(reportId=rid, processingStatus="DONE", createdTime=created, reportOptions=options)  # type: ignore[arg-type]

    def identify(reports: list[Report], **kw: Any) -> lost_reports.Found | None:
        args = {"invoice_number": "INV", "document_type": None, "attempt": attempt, "known": set()}
        args |= {"others_overlap": False, "complete": True} | kw
        return lost_reports.identify(reports, **args)

    assert identify([report("A", 1)]) == lost_reports.Found("A", "TIME")
    assert identify([report("A", 1), report("B", 2)]) is None
    assert identify([report("A", 1), report("B", 2)], known={"B"}) == lost_reports.Found("A", "TIME")
    assert identify([report("A", 10)]) is None  # created after the attempt's window
    assert identify([report("A", 1)], others_overlap=True) is None
    assert identify([report("A", 1)], complete=False) is None
    labelled = [report("A", 1, {"invoiceId": "X"}), report("B", 50, {"invoiceId": "INV"})]
    assert identify(labelled) == lost_reports.Found("B", "OPTIONS")  # by invoiceId, whenever it was made
    assert identify(labelled, document_type="Credits") is None
    assert identify(labelled[:1]) is None


# ----- recovery: aged reports, ended executions, broken documents ---------------------------------


class Aged:
    """getReport answers 404 for every report (past Amazon's retention)."""

    def get_report(self, report_id: str) -> Report:
        raise NotFoundError("getReport", 404, "NotFound", f"Report {report_id} is no longer available.")


def test_a_report_amazon_no_longer_serves_gets_one_new_report(rt: Runtime) -> None:
    r = dataclasses.replace(rt, api=Aged())  # type: ignore[arg-type]
    r.ledger.write("AGED-1", None, "run-aged", state=InvoiceState.REQUESTED, report_id="OLD-1")
    poll = contracts.CheckReportInput(
        invoice_number="AGED-1", report_id="OLD-1", polls=0, max_polls=5, run_id="run-aged"
    )
    out = steps.check_report(poll, r)
    assert (out.status, out.retry_seconds) == ("RETRY", 1)
    record = r.ledger.get("AGED-1")
    assert record is not None and record.report_id is None and record.expired_report_ids == ["OLD-1"]
    assert steps.check_report(poll, r).status == "RETRY"  # the same poll again (a retried step): same answer
    second = poll.model_copy(update={"report_id": "NEW-1"})
    r.ledger.write("AGED-1", r.ledger.get("AGED-1"), "run-aged", state=InvoiceState.REQUESTED, report_id="NEW-1")
    assert steps.check_report(second, r).status == "EXPIRED"
    record = r.ledger.get("AGED-1")
    assert record is not None and record.state is InvoiceState.FAILED and record.terminal and record.reason


class Steps:
    """A fake Step Functions client: DescribeExecution answers from a dict."""

    def __init__(self, statuses: dict[str, str]) -> None:
        self.statuses = statuses
        self.calls = 0

    def describe_execution(self, executionArn: str) -> dict[str, str]:
        self.calls += 1
        name = executionArn.rsplit(":", 1)[1]
        if name not in self.statuses:
            raise ClientError({"Error": {"Code": "ExecutionDoesNotExist", "Message": "no"}}, "DescribeExecution")
        return {"status": self.statuses[name]}


@pytest.mark.parametrize(("status", "taken_over"), [("ABORTED", True), ("FAILED", True), ("TIMED_OUT", True),
                                                    ("RUNNING", False), ("UNKNOWN-NAME", False)])  # fmt: skip
def test_an_invoice_claimed_by_an_ended_execution_is_taken_over_at_once(
    rt: Runtime, status: str, taken_over: bool
) -> None:
    fake = Steps({} if status == "UNKNOWN-NAME" else {"dead-run": status})
    prefix = "arn:aws:states:us-east-1:123456789012:execution:stack-reconcile:"
    amazon = Amazon(rt, lose=0)
    r = dataclasses.replace(rt, api=amazon, executions=ExecutionLookup(lambda: fake, prefix))  # type: ignore[arg-type]
    number = f"CLAIMED-{status}"
    r.ledger.write(number, None, "dead-run", state=InvoiceState.CLAIMED)  # a fresh heartbeat: not stale
    out = run_until_settled(r, number)
    assert (out.status == "REQUESTED") is taken_over, out.status
    assert (out.status == "OWNED_ELSEWHERE") is not taken_over
    assert fake.calls == 1


def test_the_template_lets_the_checking_functions_describe_executions_only() -> None:
    from helpers import TEMPLATE

    from abrecon_sandbox.aws.stack import load_template

    resources = load_template(TEMPLATE)["Resources"]
    allowed = {}
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        statements = [s for p in resource["Properties"].get("Policies", []) for s in p.get("Statement", [])]
        for statement in statements:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if "states:DescribeExecution" in actions:
                allowed[name] = statement["Resource"]["Fn::Sub"]
    assert set(allowed) == {"CreateReportFunction", "DownloadDocumentFunction", "StartRunFunction"}
    for name in ("CreateReportFunction", "DownloadDocumentFunction"):
        assert allowed[name].endswith(":execution:${AWS::StackName}-reconcile:*"), allowed[name]
        prefix = resources[name]["Properties"]["Environment"]["Variables"]["EXECUTION_ARN_PREFIX"]["Fn::Sub"]
        assert allowed[name] == prefix + "*"


class Broken:
    """A report whose document is not a PDF at all."""

    def warm_up(self) -> None:
        """Nothing to warm up."""

    def get_report_document(self, document_id: str) -> ReportDocument:
        return ReportDocument(reportDocumentId=document_id, url="https://example.invalid/doc")

    def download(self, url: str, *, max_bytes: int) -> bytes:
        return b"<html>not a document</html>"


def test_a_broken_document_is_retried_by_a_bounded_number_of_runs(rt: Runtime) -> None:
    r = dataclasses.replace(rt, api=Broken())  # type: ignore[arg-type]
    limit = r.settings.document_retry_runs
    assert limit == 3  # the template's default
    r.ledger.write("BROKEN-1", None, "run-1", state=InvoiceState.REQUESTED, report_id="REP-B")
    for run in range(1, limit + 1):
        item = contracts.DownloadDocumentInput(
            invoice_number="BROKEN-1", report_document_id="DOC-B", run_id=f"run-{run}"
        )
        with pytest.raises(DocumentError) as caught:
            steps.download_document(item, r)
        record = r.ledger.get("BROKEN-1")
        assert isinstance(record, InvoiceRecord) and record.document_failures == run
        assert record.terminal is (run == limit), run
        assert f"{run} of {limit} runs" in str(caught.value)
        assert record.report_id == "REP-B"  # the next run polls the same report again, no new one
    out = steps.create_report(contracts.CreateReportInput(invoice=request("BROKEN-1").invoice, run_id="run-9"), r)
    assert out.status == "ALREADY_FAILED"


class OnceAfterApplying(ServiceFaults):
    """The next DynamoDB request of `action` is applied, then answered 500 (botocore retries it)."""

    def __init__(self, action: str) -> None:
        super().__init__("dynamodb-5xx", seed=1)
        self.action = action

    def answer(self, service: str, environ: dict[str, Any]) -> Any:
        if service != "dynamodb" or environ.get("HTTP_X_AMZ_TARGET") != f"DynamoDB_20120810.{self.action}":
            return None
        self.action = ""
        return _DYNAMODB_5XX[0], True


def test_a_conditional_write_applied_then_answered_500_is_not_a_conflict(rt: Runtime, local_aws: LocalAws) -> None:
    """DynamoDB may apply a write and answer 500; the SDK's retry then fails the write's own condition. That is our
    write, not another execution's (dynamodb-5xx in the fault matrix)."""
    assert local_aws.router is not None
    record = rt.ledger.write("DDB-1", None, "run-ddb", state=InvoiceState.CLAIMED)
    faults = OnceAfterApplying("UpdateItem")
    local_aws.router.service_faults = faults
    try:
        written = rt.ledger.write("DDB-1", record, "run-ddb", state=InvoiceState.REQUESTED, report_id="R-DDB")
        assert dict(faults.injected) == {"dynamodb:InternalServerError:after": 1}
        local_aws.router.service_faults = faults = OnceAfterApplying("PutItem")
        assert rt.ledger.remember_report("R-DDB", "DDB-1", only_if_new=True)
        assert dict(faults.injected) == {"dynamodb:InternalServerError:after": 1}
    finally:
        local_aws.router.service_faults = None
    assert written.state is InvoiceState.REQUESTED and written.version == record.version + 1
    assert not rt.ledger.remember_report("R-DDB", "SOMEONE-ELSE", only_if_new=True)
    with pytest.raises(LedgerConflict):  # a stale version is still a conflict
        rt.ledger.write("DDB-1", record, "run-ddb", state=InvoiceState.FAILED)
