"""Step Functions' quotas, enforced in moto's ASL interpreter as AWS enforces them.

AWS (Step Functions developer guide, "Service quotas" and "Error handling"; the Map state's ResultWriter page):
- 256 KiB (UTF-8 bytes) for any state's input, output, and a task's result: past it the state fails with
  `States.DataLimitExceeded`, a terminal error that `States.ALL` in a Retry or Catch does not match.
- A Distributed Map without a ResultWriter returns the array of its child executions' outputs (the COMPACT
  transformation), and that array is subject to the same 256 KiB whatever `ResultPath` says (AWS builds the
  result before ResultPath applies it; a user report, aws-cdk#24799, finds `ResultPath`/`OutputPath: null` make no
  difference). With a ResultWriter the results go to S3 and the state's result is the small ResultWriterDetails.
- 25,000 events in one execution's history; each child of a Distributed Map is an execution of its own. An
  execution that reaches it fails; a failed child fails its Map run when no failure is tolerated
  (ToleratedFailurePercentage 0, the default), and with it the parent execution.

moto checks the size only of a state's output after ResultPath, lets States.ALL catch States.DataLimitExceeded,
counts no history quota, and carries on after a failed Distributed Map child. This module closes those gaps while
installed, and lists every breach in `violations` (the summary's `quotaViolations`).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
    DistributedIterationComponent,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap
from moto.stepfunctions.parser.asl.component.state.state import CommonStateField
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

from abrecon_sandbox.aws.meter import StepFunctionsMeter

PAYLOAD_QUOTA_BYTES = 256 * 1024
HISTORY_QUOTA_EVENTS = 25_000
DATA_LIMIT = StatesErrorNameType.StatesStatesDataLimitExceeded


def payload_bytes(value: Any) -> int:
    """The size Step Functions counts: the UTF-8 bytes of the value as compact JSON (a string as it is)."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode())


def map_result_bytes(outputs: list[Any]) -> int:
    """The size of a Distributed Map's aggregated result without a ResultWriter: the array of child outputs."""
    return payload_bytes(outputs)


class StepFunctionsQuotas:
    """Install the checks; `violations` lists each breach: kind (stateInput, stateOutput, mapResult, history), the
    state, and its bytes (quota PAYLOAD_QUOTA_BYTES) or events (quota HISTORY_QUOTA_EVENTS)."""

    def __init__(self, meter: StepFunctionsMeter) -> None:
        self._meter = meter
        self._lock = threading.Lock()
        self._current_map = threading.local()
        self._originals: dict[str, Any] = {}
        self.violations: list[dict[str, Any]] = []
        self.max_map_result_bytes = 0

    def _record(self, violation: dict[str, Any]) -> None:
        with self._lock:
            self.violations.append(violation)

    def install(self) -> None:
        """Patch moto's interpreter: state inputs and history at each state's start, the Map's aggregated result,
        States.ALL's reach, and failed Distributed Map children."""
        quotas = self
        self._originals = {
            "state_body": CommonStateField._eval_body,
            "verify": CommonStateField._verify_size_quota,
            "map_execution": StateMap._eval_execution,
            "map_run": DistributedIterationComponent._map_run,
            "error_equals": ErrorEqualsDecl._eval_body,
        }
        original = self._originals

        def state_body(state: CommonStateField, env: Any) -> None:
            events = quotas._meter.history_events(env.event_history_context)
            if events >= HISTORY_QUOTA_EVENTS:
                quotas._record({"kind": "history", "state": state.name, "events": events})
                env.set_error(
                    ExecutionFailedEventDetails(
                        error=StatesErrorNameType.StatesRuntime.to_name(),
                        cause=f"the execution history reached {HISTORY_QUOTA_EVENTS} events (the quota)",
                    )
                )
                return
            size = payload_bytes(env.states.get_input())
            if size > PAYLOAD_QUOTA_BYTES:
                quotas._record({"kind": "stateInput", "state": state.name, "bytes": size})
                raise _data_limit(env, f"the input of state '{state.name}' is {size} bytes")
            original["state_body"](state, env)

        def verify(state: CommonStateField, env: Any, value: Any) -> None:
            size = payload_bytes(value)
            if size > PAYLOAD_QUOTA_BYTES:
                quotas._record({"kind": "stateOutput", "state": state.name, "bytes": size})
                raise _data_limit(env, f"the output of state '{state.name}' is {size} bytes")
            original["verify"](state, env, value)

        def map_execution(state: StateMap, env: Any) -> None:
            quotas._current_map.state = state
            try:
                original["map_execution"](state, env)
            finally:
                quotas._current_map.state = None

        def map_run(component: DistributedIterationComponent, env: Any, eval_input: Any) -> None:
            original["map_run"](component, env, eval_input)
            _fail_untolerated(env, eval_input.map_run_record)
            quotas._check_map_result(env)

        def error_equals(decl: ErrorEqualsDecl, env: Any) -> None:
            error_name = env.stack[-1]
            original["error_equals"](decl, env)
            terminal = isinstance(error_name, StatesErrorName) and error_name.typ == DATA_LIMIT
            if terminal and env.stack[-1] and ErrorEqualsDecl._STATE_ALL_ERROR in decl.error_names:
                env.stack[-1] = False  # States.ALL does not match States.DataLimitExceeded

        CommonStateField._eval_body = state_body  # type: ignore[method-assign,assignment]
        CommonStateField._verify_size_quota = verify  # type: ignore[method-assign,assignment]
        StateMap._eval_execution = map_execution  # type: ignore[method-assign,assignment]
        DistributedIterationComponent._map_run = map_run  # type: ignore[method-assign,assignment]
        ErrorEqualsDecl._eval_body = error_equals  # type: ignore[method-assign,assignment]

    def _check_map_result(self, env: Any) -> None:
        """The aggregated result of the Map state running now, against the payload quota (noted for the meter)."""
        state = getattr(self._current_map, "state", None)
        if state is None or state.result_writer is not None:
            return  # with a ResultWriter the results go to S3; the state's result is their location
        size = map_result_bytes(env.stack[-1])
        self._meter.note_payload(size)
        with self._lock:
            self.max_map_result_bytes = max(self.max_map_result_bytes, size)
        if size > PAYLOAD_QUOTA_BYTES:
            self._record({"kind": "mapResult", "state": state.name, "bytes": size})
            raise _data_limit(env, f"the aggregated result of Map state '{state.name}' is {size} bytes")

    def uninstall(self) -> None:
        """Put moto's own code back."""
        if not self._originals:
            return
        CommonStateField._eval_body = self._originals["state_body"]  # type: ignore[method-assign]
        CommonStateField._verify_size_quota = self._originals["verify"]  # type: ignore[method-assign]
        StateMap._eval_execution = self._originals["map_execution"]  # type: ignore[method-assign]
        DistributedIterationComponent._map_run = self._originals["map_run"]  # type: ignore[method-assign]
        ErrorEqualsDecl._eval_body = self._originals["error_equals"]  # type: ignore[method-assign]
        self._originals = {}


def _fail_untolerated(env: Any, record: Any) -> None:
    """Fail the Map run when more child executions failed than it tolerates, as AWS does (moto carries on)."""
    failed = record.item_counter.failed.get() + record.item_counter.timed_out.get()
    tolerated = record.tolerated_failure_count or 0
    percentage = record.tolerated_failure_percentage or 0
    total = max(1, record.item_counter.total.get())
    if failed > tolerated and failed * 100 / total > percentage:
        raise FailureEventException(
            FailureEvent(
                env=env,
                error_name=StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold),
                event_type=HistoryEventType.MapRunFailed,
                event_details=EventDetails(  # type: ignore[typeddict-item]
                    executionFailedEventDetails=ExecutionFailedEventDetails(
                        error=StatesErrorNameType.StatesExceedToleratedFailureThreshold.to_name(),
                        cause=f"{failed} of {total} child executions failed; none is tolerated",
                    )
                ),
            )
        )


def _data_limit(env: Any, what: str) -> FailureEventException:
    cause = f"{what}, over the {PAYLOAD_QUOTA_BYTES}-byte quota of Step Functions"
    return FailureEventException(
        FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=DATA_LIMIT),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(  # type: ignore[typeddict-item]
                executionFailedEventDetails=ExecutionFailedEventDetails(error=DATA_LIMIT.to_name(), cause=cause)
            ),
        )
    )
