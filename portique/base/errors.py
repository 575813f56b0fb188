"""The project's one exception root, and the errors of the base and the ticket core.

Every error any package of Portique raises on purpose is a GateError (the hardware,
scanner and feed packages have their own branches under it); each leaf also subclasses
the matching builtin. Commands turn any of them into one `gate: error:` line and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class GateError(Exception):
    """Root of every error Portique raises on purpose."""


class CredentialError(GateError, ValueError):
    """A credential could not be built or read."""


class CredentialFormatError(CredentialError):
    """A code's text or bytes are not a well-formed credential."""


class NotATicketError(CredentialFormatError):
    """A text that is not a code of this format at all (wrong prefix, far too long)."""


class UnsupportedVersionError(CredentialFormatError):
    """A credential of a format version this gate does not know."""


class KeyFileError(GateError, ValueError):
    """A key file is missing, unreadable or not what it claims to be."""


class ConfigError(GateError, ValueError):
    """A configuration file or value is invalid; the message names the key.

    One error holds every problem found in a file (``problems``, one message each, in
    the file's order); its text is those messages, one per line."""

    def __init__(self, message: str = "", *, problems: tuple[str, ...] | None = None) -> None:
        self.problems: tuple[str, ...] = problems if problems is not None else (message,)
        super().__init__("\n".join(self.problems))


class UsageError(GateError, ValueError):
    """A command-line argument is invalid; the message names the argument."""
