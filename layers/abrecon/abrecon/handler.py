"""The one shape every Lambda handler has: Powertools around input parsing, one domain step, output dumping."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ValidationError

from abrecon.budget import TimeBudget
from abrecon.contracts import StepModel
from abrecon.errors import InvalidInputError
from abrecon.runtime import Runtime, get_runtime

logger = Logger()
tracer = Tracer()
metrics = Metrics()

InputT = TypeVar("InputT", bound=BaseModel)
Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def step_handler(input_model: type[InputT], step: Callable[[InputT, Runtime], StepModel]) -> Handler:
    """Wrap a domain step as a Lambda handler: parse the event into input_model, run step, return its JSON."""

    @logger.inject_lambda_context(correlation_id_path="runId")
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        try:
            request = input_model.model_validate(event)
        except ValidationError as exc:
            # Name the fields, never echo their values: payloads may carry invoice data.
            fields = ", ".join(".".join(str(p) for p in err["loc"]) + f" ({err['type']})" for err in exc.errors())
            raise InvalidInputError(f"{step.__name__}: invalid input: {fields}") from exc
        runtime = get_runtime()
        # This invocation's own clock: loops and waits inside the step stop in time to hand over (Lambda's Timeout).
        budget = TimeBudget(context.get_remaining_time_in_millis, runtime.settings.time_margin_seconds)
        result = step(request, dataclasses.replace(runtime, budget=budget))
        for name, value in result.metrics().items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return result.model_dump(mode="json", by_alias=True)

    handler: Handler = lambda_handler  # the Powertools decorators are untyped
    return handler
