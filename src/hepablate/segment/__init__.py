"""Segmentation of the liver, tumours and ablation zones by a deep network trained on a
cohort's own masks (docs/segmentation.md).

``fingerprint(cohort)`` measures the data, ``plan(fingerprint, overrides)`` turns it into a
plan (spacing, patch, normalisation, network, batch, schedule), ``train_segmenter`` trains a
DynUNet per task with checkpoints it resumes from, ``save_segmenter`` / ``load_segmenter``
write and verify the bundle (safetensors and JSON, hashed), ``segment_scan`` segments a scan,
``segment_patient`` a patient's scans into the cohort format's masks, the ablation zones matched
to the tumours they treat, with ``segmentation.json`` (and a DICOM-SEG per DICOM scan).
"""

from hepablate.segment.bundle import Segmenter, load_segmenter, save_segmenter, segmenter_id
from hepablate.segment.data import DEFAULT_TASKS, TaskSpec
from hepablate.segment.errors import SegmentError
from hepablate.segment.patient import PatientSegmentation, SegmentationRecord, segment_patient
from hepablate.segment.plan import Fingerprint, Plan, fingerprint, load_overrides, plan
from hepablate.segment.predict import Segmentation, segment_scan
from hepablate.segment.train import TrainEvent, TrainResult, train_segmenter

__all__ = [
    "DEFAULT_TASKS",
    "Fingerprint",
    "PatientSegmentation",
    "Plan",
    "SegmentError",
    "Segmentation",
    "SegmentationRecord",
    "Segmenter",
    "TaskSpec",
    "TrainEvent",
    "TrainResult",
    "fingerprint",
    "load_overrides",
    "load_segmenter",
    "plan",
    "save_segmenter",
    "segment_patient",
    "segment_scan",
    "segmenter_id",
    "train_segmenter",
]
