"""The virtual cohort (``hepablate simulate``): an ordinary cohort folder plus its ground truth.

Clinical variables (``clinical``), anatomy, tumours and ablation plans as solid shapes
(``anatomy``, ``shapes``), CT scans and masks drawn through the patient's motion (``render``),
fine-grid ground-truth geometry (``truth``), the hazard model of the outcomes (``outcomes``),
the whole cohort (``generate``: ``simulate_cohort``), PNG previews (``preview``) and the oracle
with the FeatureTable columns that measure each true driver (``oracle``: evaluation only).
Method and calibration: ``docs/simulator.md``.
"""
