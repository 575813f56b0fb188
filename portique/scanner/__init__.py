"""The gate's eyes: frame sources (camera, recorded clips), QR decoders and debouncing.

Importing this package loads nothing heavy; OpenCV and the decoders are imported by the
modules that need them (``portique.scanner.sources``, ``portique.scanner.decoders``).
"""
