"""Image volumes and masks: reading, writing and (in later stages) processing."""

from hepablate.imaging.io import Grid, ImageReadError, Volume, read_volume, write_volume

__all__ = ["Grid", "ImageReadError", "Volume", "read_volume", "write_volume"]
