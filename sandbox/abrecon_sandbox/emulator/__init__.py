"""Amazon Business API emulator for the embedded default: LWA, Reconciliation, Document API."""

from .config import EmulatorConfig
from .emulator import Emulator

__all__ = ["Emulator", "EmulatorConfig"]
