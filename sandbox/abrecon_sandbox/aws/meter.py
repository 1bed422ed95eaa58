"""Step Functions figures moto does not report: state transitions and history size of every execution.

moto runs a Distributed Map's children without execution histories of their own, so the sandbox counts the
events its ASL interpreter publishes, per event-history context: one per execution and one per child workflow.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager


class StepFunctionsMeter:
    """Counts history events while installed; transitions are the *StateEntered events, as AWS bills them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._max_history = 0
        self.state_transitions = 0
        self.max_payload_bytes = 0
        self._original: Any = None

    def install(self) -> None:
        """Start counting."""
        original = EventManager.add_event
        meter = self

        def counting_add_event(manager: EventManager, *args: Any, **kwargs: Any) -> int:
            event_type = kwargs.get("event_type", args[1] if len(args) > 1 else None)
            details = kwargs.get("event_details", args[2] if len(args) > 2 else None)
            payload = _largest_payload(details)
            context = kwargs.get("context", args[0] if args else None)
            with meter._lock:
                meter.max_payload_bytes = max(meter.max_payload_bytes, payload)
                if context is not None:
                    count = meter._events.get(context, 0) + 1
                    meter._events[context] = count
                    meter._max_history = max(meter._max_history, count)
                if event_type is not None and str(getattr(event_type, "value", event_type)).endswith("StateEntered"):
                    meter.state_transitions += 1
            result: int = original(manager, *args, **kwargs)
            return result

        self._original = original
        EventManager.add_event = counting_add_event  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        """Stop counting."""
        if self._original is not None:
            EventManager.add_event = self._original  # type: ignore[method-assign]
            self._original = None

    def history_events(self, context: Any) -> int:
        """The events published so far in one event-history context (an execution or a Map child)."""
        with self._lock:
            return self._events.get(context, 0)

    def note_payload(self, size: int) -> None:
        """Count a payload no event carries (a Distributed Map's aggregated result, quotas.py) in the largest."""
        with self._lock:
            self.max_payload_bytes = max(self.max_payload_bytes, size)

    @property
    def max_history_events(self) -> int:
        """The largest history of any single execution or child workflow so far."""
        with self._lock:
            return self._max_history


def _largest_payload(details: Any) -> int:
    """The size in bytes of the largest input or output an event carries (state data Step Functions caps at 256 KiB)."""
    if not isinstance(details, dict):
        return 0
    largest = 0
    for detail in details.values():
        if isinstance(detail, dict):
            for name in ("input", "output"):
                value = detail.get(name)
                if isinstance(value, str):
                    largest = max(largest, len(value.encode()))
    return largest
