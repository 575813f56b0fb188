"""The steward UI's widgets."""
