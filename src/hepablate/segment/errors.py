"""The one error of the segmentation package."""

from __future__ import annotations

__all__ = ["SegmentError"]


class SegmentError(ValueError):
    """Bad input to training or prediction, or a segmentation bundle that cannot be used
    (tampered, incomplete, malformed); the message starts with the file or field at fault."""
