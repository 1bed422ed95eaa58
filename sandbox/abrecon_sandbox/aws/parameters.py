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
    broken = _allowed_values(spec, value)
    broken += _string_rules(name, spec, value) if kind == "String" else _number_rules(spec, value)
    # CloudFormation words a refusal with the ConstraintDescription when there is one.
    explanation = spec.get("ConstraintDescription")
    return [
        Violation(name, rule, value, f"Parameter '{name}' ({rule} {limit!s}) refuses {value!r}: {explanation or what}")
        for rule, limit, what in broken
    ]


# A rule a value breaks: (the rule, its limit, what the value must be).
_Broken = tuple[str, Any, str]


def _allowed_values(spec: dict[str, Any], value: str) -> list[_Broken]:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(a) for a in allowed]:
        return [("AllowedValues", list(map(str, allowed)), f"must be one of {[str(a) for a in allowed]}")]
    return []


def _string_rules(name: str, spec: dict[str, Any], value: str) -> list[_Broken]:
    broken: list[_Broken] = []
    pattern = spec.get("AllowedPattern")
    if pattern is not None:
        try:
            matches = re.fullmatch(pattern, value) is not None
        except re.error as exc:
            raise TemplateError(f"parameter {name}: AllowedPattern {pattern!r} does not compile") from exc
        if not matches:
            broken.append(("AllowedPattern", pattern, f"must match pattern {pattern}"))
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        broken.append(("MinLength", spec["MinLength"], f"must contain at least {spec['MinLength']} characters"))
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        broken.append(("MaxLength", spec["MaxLength"], f"must contain at most {spec['MaxLength']} characters"))
    return broken


def _number_rules(spec: dict[str, Any], value: str) -> list[_Broken]:
    try:
        number = Decimal(value)
    except InvalidOperation:
        return [("Type", "Number", "must be a number")]
    if not number.is_finite():
        return [("Type", "Number", "must be a number")]
    broken: list[_Broken] = []
    if "MinValue" in spec and number < Decimal(str(spec["MinValue"])):
        broken.append(("MinValue", spec["MinValue"], f"must be a number not less than {spec['MinValue']}"))
    if "MaxValue" in spec and number > Decimal(str(spec["MaxValue"])):
        broken.append(("MaxValue", spec["MaxValue"], f"must be a number not greater than {spec['MaxValue']}"))
    return broken
