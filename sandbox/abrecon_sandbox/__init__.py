"""The embedded default: local AWS (moto), Lambda worker processes and the Amazon Business emulator."""
