"""The revocation package's exceptions: one root, each leaf also a matching builtin.

Every failure of a sync leaves the last good data in force; the exception says why.
"""

from __future__ import annotations

from portique.base.errors import GateError


class FeedError(GateError):
    """Root of every error the revocation package raises on purpose."""


class FeedFormatError(FeedError, ValueError):
    """A feed file or index is not well formed (the message names the file and line)."""


class FeedFieldError(FeedFormatError):
    """One field of an entry cannot be written to a feed; `field` names it as the CSV
    column does (ticket_id, min_generation, generation, order_ref, holder_name, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class FeedSignatureError(FeedError, ValueError):
    """The index signature does not verify with the feed key it names."""


class FeedKeyError(FeedError, LookupError):
    """The index names a key that is unknown, withdrawn, out of its validity, or not a feed key."""

    def __str__(self) -> str:  # LookupError would quote the message like a dict key
        return str(self.args[0]) if self.args else ""


class FeedHashError(FeedError, ValueError):
    """A downloaded file's size or SHA-256 differs from what the signed index declares."""


class FeedReplayError(FeedError, ValueError):
    """The feed offered is older than what the store already holds (a replay or a rollback)."""


class FeedFutureError(FeedError, ValueError):
    """The index is signed with a time too far ahead of the gate's clock (the publisher's
    clock is wrong, or the gate's clock is behind): accepting it would make every honest
    later feed look like a replay."""


class FeedEventError(FeedError, ValueError):
    """The feed is for another event than the one this gate serves."""


class FeedSequenceJumpError(FeedError, ValueError):
    """The index's sequence is further ahead of the store's than a publisher can honestly
    have gone (docs/feeds.md, "Bounds"): accepting it would lock out every later feed."""


class FeedCountError(FeedFormatError):
    """After an apply, the store's counts differ from the counts the signed index states."""


class FeedRedirectError(FeedError, ValueError):
    """The feed server redirected to another origin or scheme than the gate allows."""


class FeedCancelledError(FeedError, InterruptedError):
    """The sync was stopped (SIGTERM) before it finished; nothing was applied."""


class FeedGapError(FeedError, ValueError):
    """No chain of deltas and no usable snapshot leads from the store's sequence to the newest."""


class FeedTooLargeError(FeedError, ValueError):
    """A download is larger than the configured size cap."""


class FeedNetworkError(FeedError, ConnectionError):
    """The feed server could not be reached or did not answer usefully."""


class FeedHTTPError(FeedNetworkError):
    """The feed server answered with an HTTP error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class FeedTimeoutError(FeedNetworkError, TimeoutError):
    """The feed server stalled longer than the configured timeout."""


class StoreError(FeedError, OSError):
    """The local feed store cannot be opened or written."""


class PublishError(FeedError, ValueError):
    """The publisher's input (CSV, key, output folder) is invalid; the message names it."""


class MassRemovalError(PublishError):
    """A publication would remove more revocations or manifest entries than the configured
    share of the previous publication (a truncated export, most likely)."""
