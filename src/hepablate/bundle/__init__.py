"""Model bundles: a validated model as files that load without executing code, signed by whoever
made it.

``hepablate train`` writes ``RUN_DIR/bundle/``:

- ``manifest.json``: format and version, the model's name and kind, the endpoint, the versions
  of the packages it was fitted with, and the SHA-256 of every other file; ``manifest.sha256``
  the SHA-256 of the manifest itself (the bundle's id); ``signature.json``: the Ed25519
  signature of that id by the user's key, with the signer and the time
  (``hepablate.bundle.signing``; not in the manifest, so signing does not change the id);
- ``extraction.json``: the ExtractionConfig the FeatureTable was made with (null for a tabular
  cohort), so a new patient is measured exactly as the training rows were;
- ``study.json``: the study config as run; ``schema.json``: the FeatureTable columns the model
  reads, their types, the training medians/modes (the reference patient of the
  explanations and what-if curves: summary values, not a patient's row), each numeric
  column's 1st-99th percentile range and each categorical column's levels (what a new
  patient's inputs are checked against);
- ``metrics.json``: the model's cross-validated metrics with CIs, the comparison and the
  permutation check; ``thresholds.json``: the decision threshold, the risk-group cut points
  (tertiles of the out-of-fold predictions) and, for a time-to-event model, the months of the
  predicted survival curves (monthly while enough training rows are followed);
- ``preparation.skops`` (the fitted preparation and selection steps, skops) and the model:
  ``model.skops`` for a scikit-learn or scikit-survival estimator, or ``model.safetensors`` +
  ``model.json`` for a deep network (its ``to_state``).

Nothing in the manifest depends on when or where the bundle was written: the same fitted
models give the same bytes (``_skops.dump_skops``), hence the same id.

``load_bundle`` accepts only regular files directly in the folder (no links, folders, FIFOs or
devices), exactly the files a bundle has, each matching its hash; a manifest of the expected
shape, this format version and scikit-learn minor version; a signature by a trusted key or a
pinned id (``signing.check_trust``); JSON files of the expected shape; skops files naming only
the types hepablate writes (``trusted_types.TRUSTED_TYPES``); a network rebuilt from its
weights by the class the models' registry gives the manifest's kind. Each file is read once
and parsed from the bytes whose hash was checked. Nothing is unpickled. Every refusal is a
``BundleError`` that starts with the file at fault.

Modules: ``manifest.py`` (the manifest, the file sets, reading and verifying a folder, the
versions), ``contents.py`` (the JSON files and their shapes), ``save.py`` (``save_bundle``,
``sign_bundle``), ``load.py`` (``Bundle``, ``load_bundle``), ``predict.py`` (a new patient's
prediction), ``signing.py`` (keys, signatures, trust), ``encoder.py`` (an image bundle as the
extraction's encoder), ``trusted_types.py`` (what skops may load). This face re-exports the
public API.
"""

from hepablate.bundle._errors import BundleError
from hepablate.bundle.contents import BundleMetrics
from hepablate.bundle.load import Bundle, load_bundle
from hepablate.bundle.manifest import FORMAT_VERSION, bundle_id_of
from hepablate.bundle.save import bundle_model_name, save_bundle, sign_bundle
from hepablate.bundle.signing import Trust, TrustStore
from hepablate.schemas.manifest import Manifest

__all__ = [
    "FORMAT_VERSION",
    "Bundle",
    "BundleError",
    "BundleMetrics",
    "Manifest",
    "Trust",
    "TrustStore",
    "bundle_id_of",
    "bundle_model_name",
    "load_bundle",
    "save_bundle",
    "sign_bundle",
]
