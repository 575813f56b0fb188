"""The [feeds] section of the gate's config: where the feed store lives and how to sync it."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from portique.base.configschema import setting
from portique.base.errors import ConfigError

if TYPE_CHECKING:
    from portique.revocation.sync import SyncSettings


NO_FEED_WARNING = "no revocation feed: resold tickets cannot be refused"
"""What every status output says of a gate configured with ``[feeds] required = false``."""


@dataclass(frozen=True)
class FeedsConfig:
    store: Path = setting(description="The local feed store (SQLite). Holds holder names: "
                          "created mode 0640, must belong to the gate's service user")
    base_url: str = setting(description="Where the feeds are served: the gate fetches "
                            "<base_url>/<event>/index.json (http:// or https://)")
    trust_dir: Path | None = setting(None, description="Folder of public keys holding the "
                                     "feed keys (role feed); default: keys.trust_dir")
    poll_seconds: float = setting(60.0, description="`gate sync --watch`: seconds between "
                                  "syncs", minimum=5, maximum=86400)
    timeout_seconds: float = setting(10.0, description="Seconds to wait for a connection or "
                                     "for the next bytes before calling the server stalled",
                                     minimum=0.1, maximum=300)
    download_seconds: float = setting(300.0, description="Seconds one file may take to "
                                      "download in all", minimum=1, maximum=3600)
    retries: int = setting(3, description="Extra attempts after a network failure, with "
                           "exponential backoff and jitter", minimum=0, maximum=10)
    backoff_seconds: float = setting(1.0, description="Delay before the first retry; "
                                     "doubles each time", minimum=0, maximum=60)
    max_download_mb: float = setting(256.0, description="Size cap of any one feed file, "
                                     "in MiB", minimum=0.001, maximum=4096)
    purge_after_hours: float = setting(72.0, description="Holder names are erased this many "
                                       "hours after the event ends (as the feed states it)",
                                       minimum=0, maximum=8760)
    future_tolerance_seconds: float = setting(
        3600.0, description="An index signed more than this many seconds ahead of the "
        "gate's clock is refused (a publisher clock set in the future would otherwise make "
        "every later honest feed look like a replay)", minimum=60, maximum=604800)

    redirect_origins: tuple[str, ...] = setting(
        (), description="Origins (scheme://host[:port]) besides base_url's that the feed "
        "server may redirect to, with base_url's scheme; every other redirect is refused")

    required: bool = setting(
        True, description="false, with no other [feeds] key: this gate runs without a "
        "revocation feed, so resold and cancelled tickets cannot be refused (every status "
        "says so); a gate with no [feeds] table at all refuses to start")
    ready_max_age_s: float = setting(
        900.0, description="`gate ready`: the feed counts as fresh when the gate heard "
        "from the feed server at most this many seconds ago", minimum=60, maximum=604800)

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"feeds.base_url: must be an http:// or https:// URL, got "
                              f"{self.base_url!r}")
        for number, origin in enumerate(self.redirect_origins):
            allowed = urllib.parse.urlsplit(origin)
            if allowed.scheme != parts.scheme or not allowed.netloc \
                    or allowed.path not in ("", "/") or allowed.query or allowed.fragment:
                raise ConfigError(f"feeds.redirect_origins[{number}]: must be an origin "
                                  f"{parts.scheme}://host[:port] (base_url's scheme), got "
                                  f"{origin!r}")

    def sync_settings(self) -> SyncSettings:
        from portique.revocation.sync import SyncSettings

        return SyncSettings(base_url=self.base_url, timeout_seconds=self.timeout_seconds,
                            download_seconds=self.download_seconds, retries=self.retries,
                            backoff_seconds=self.backoff_seconds,
                            max_download_bytes=int(self.max_download_mb * (1 << 20)),
                            purge_after_seconds=self.purge_after_hours * 3600,
                            future_tolerance_seconds=self.future_tolerance_seconds,
                            redirect_origins=self.redirect_origins)
