"""Revocation and manifest feeds: the signed format, the local store, the sync client and
the reference publisher (docs/feeds.md)."""
