"""The steward's terminal UI (`gate steward`): a Textual app over the control socket."""
