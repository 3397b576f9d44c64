"""The one error of the bundle package."""

from __future__ import annotations

__all__ = ["BundleError"]


class BundleError(ValueError):
    """A bundle that cannot be trusted or used: tampered, unsigned by a trusted key, malformed,
    incomplete or incompatible. The message starts with the file (or folder) at fault."""
