"""Portique: the software of a turnstile gate."""

__version__ = "0.1.0"
