"""CloudFormation's own parameter rules, checked before the sandbox creates anything, as CreateStack checks them.

CloudFormation refuses a stack whose parameter values (the template's defaults included) break a declared rule:
AllowedValues, AllowedPattern (which must match the whole value), MinLength/MaxLength for String parameters,
MinValue/MaxValue (and being a number at all) for Number parameters. The sandbox refuses the same values, so a run
that passes here does not fail at deploy for a parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from abrecon_sandbox.aws.stack import TemplateError

CHECKED_TYPES = ("String", "Number")


@dataclass(frozen=True)
class Violation:
    """One parameter value against one of its rules."""

    parameter: str
    rule: str  # AllowedValues, AllowedPattern, MinLength, MaxLength, MinValue, MaxValue, Type, Default
    value: str
    message: str


class ParameterError(TemplateError):
    """Parameter values CloudFormation would refuse at stack creation; each violation names the parameter and rule."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        super().__init__("; ".join(v.message for v in violations))


def check_parameters(declared: dict[str, Any], values: dict[str, str]) -> None:
    """Raise ParameterError listing every value (default or override) that breaks its parameter's rules."""
    violations: list[Violation] = []
    for name, spec in declared.items():
        value = values.get(name)
        if value is None:
            violations.append(Violation(name, "Default", "", f"Parameter '{name}' has no Default and no value"))
            continue
        violations.extend(_check_one(name, spec, value))
    if violations:
        raise ParameterError(violations)


def _check_one(name: str, spec: dict[str, Any], value: str) -> list[Violation]:
    kind = spec.get("Type", "String")
    if kind not in CHECKED_TYPES:
        raise TemplateError(f"parameter {name}: the sandbox does not check parameters of type {kind}")
    explanation = spec.get("ConstraintDescription")
    found: list[Violation] = []

    def refuse(rule: str, limit: Any, what: str) -> None:
        # CloudFormation words a refusal with the ConstraintDescription when there is one.
        reason = explanation or what
        found.append(Violation(name, rule, value, f"Parameter '{name}' ({rule} {limit!s}) refuses {value!r}: {reason}"))

    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(a) for a in allowed]:
        refuse("AllowedValues", list(map(str, allowed)), f"must be one of {[str(a) for a in allowed]}")
    if kind == "String":
        pattern = spec.get("AllowedPattern")
        if pattern is not None:
            try:
                matches = re.fullmatch(pattern, value) is not None
            except re.error as exc:
                raise TemplateError(f"parameter {name}: AllowedPattern {pattern!r} does not compile") from exc
            if not matches:
                refuse("AllowedPattern", pattern, f"must match pattern {pattern}")
        if "MinLength" in spec and len(value) < int(spec["MinLength"]):
            refuse("MinLength", spec["MinLength"], f"must contain at least {spec['MinLength']} characters")
        if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
            refuse("MaxLength", spec["MaxLength"], f"must contain at most {spec['MaxLength']} characters")
        return found
    try:
        number = Decimal(value)
    except InvalidOperation:
        refuse("Type", "Number", "must be a number")
        return found
    if not number.is_finite():
        refuse("Type", "Number", "must be a number")
        return found
    if "MinValue" in spec and number < Decimal(str(spec["MinValue"])):
        refuse("MinValue", spec["MinValue"], f"must be a number not less than {spec['MinValue']}")
    if "MaxValue" in spec and number > Decimal(str(spec["MaxValue"])):
        refuse("MaxValue", spec["MaxValue"], f"must be a number not greater than {spec['MaxValue']}")
    return found
