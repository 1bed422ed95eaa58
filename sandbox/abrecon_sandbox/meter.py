"""Step Functions figures moto does not report: state transitions and history size of every execution.

moto runs a Distributed Map's children without execution histories of their own, so the sandbox counts the
events its ASL interpreter publishes, per event manager (one per execution or child workflow).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager


class StepFunctionsMeter:
    """Counts history events while installed; transitions are the *StateEntered events, as AWS bills them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events_per_execution: Counter[int] = Counter()
        self.state_transitions = 0
        self._original: Any = None

    def install(self) -> None:
        """Start counting."""
        original = EventManager.add_event
        meter = self

        def counting_add_event(manager: EventManager, *args: Any, **kwargs: Any) -> int:
            event_type = kwargs.get("event_type", args[1] if len(args) > 1 else None)
            with meter._lock:
                meter.events_per_execution[id(manager)] += 1
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

    @property
    def max_history_events(self) -> int:
        """The largest history of any single execution or child workflow so far."""
        with self._lock:
            return max(self.events_per_execution.values(), default=0)
