"""Features per tumour and patient, the same code for training and for a new patient.

``extract(cohort, config) -> FeatureTable`` (``extract``: assembly, metadata, warnings) runs
``patient`` (one patient's images, registration and measurements) on every patient, with the
``config`` (``ExtractionConfig``), the clinical scores (``clinical``), ablation geometry
(``geometry``; the margin between fitted surfaces in ``margin``), IBSI radiomics through MIRP
(``radiomics``, checked by ``ibsi``), robustness ICC (``robustness``), deep-model crops
(``crops``) and a per-patient ``cache``. ``table`` holds the FeatureTable's reading and row
rules. The ``deep.image_*`` columns come from an encoder the caller passes in: features never
load a bundle.
"""
