"""Amazon Business API emulator for the embedded default: LWA, Reconciliation, Document API."""

from .config import EmulatorConfig
from .emulator import Emulator
from .faults import FAULT_PROFILES

__all__ = ["FAULT_PROFILES", "Emulator", "EmulatorConfig"]
