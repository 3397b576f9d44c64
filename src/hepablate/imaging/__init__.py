"""Image volumes and masks: the ``Volume`` type, reading and writing (``io``), DICOM-SEG and
RTSTRUCT masks (``segmentations``), registration of the post-ablation CT onto the pre-ablation
CT (``registration``) and preprocessing steps (``preprocess``).

Its modules sit in different layers: ``io`` and ``segmentations`` below ``hepablate.cohort``
(validating a cohort reads its images), ``registration`` and ``preprocess`` above it.
"""

from hepablate.imaging.io import Grid, ImageReadError, Volume, read_volume, write_volume

__all__ = ["Grid", "ImageReadError", "Volume", "read_volume", "write_volume"]
