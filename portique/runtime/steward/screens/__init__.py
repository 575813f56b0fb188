"""The steward UI's screens and dialogs."""

from __future__ import annotations

from typing import Protocol


class Translatable(Protocol):
    def retranslate(self) -> None:
        """Show every string again in the session's language."""
