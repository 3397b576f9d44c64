"""An image network's bundle as the encoder of a FeatureTable's ``deep.image_*`` columns.

``extraction.deep`` names a bundle of an image model (a kind with ``crops`` in the models'
registry: ``multimodal``, ``multimodal_surv``); its image
encoder's embedding of each tumour's crops becomes candidate features of another study. The
bundle is loaded and checked here, before any patient is extracted, and handed to
:func:`hepablate.features.extract.extract` as its ``encoder`` (features never load bundles).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from hepablate.bundle import Bundle, BundleError, load_bundle
from hepablate.cohort import PATIENT_INDEX
from hepablate.features.extract import DeepEncoder
from hepablate.models import KINDS

__all__ = ["BundleEncoder", "load_encoder"]


class BundleEncoder:
    """Adds the ``deep.image_*`` columns: the encoder bundle's embedding of every tumour with
    crops (rows without crops stay empty), and the bundle's identity in the table's attrs."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle

    def __call__(self, table: pd.DataFrame) -> pd.DataFrame:
        crops = table.attrs["hepablate"]["crops"]
        model: Any = self.bundle.pipeline[-1]
        model.set_params(crops=crops)
        with_crops = table.index[
            table.index.get_level_values(PATIENT_INDEX).isin(list(crops.get("keys") or {}))
        ]
        embedded = model.embed(table.loc[with_crops])
        attrs = table.attrs
        table = pd.concat([table, embedded.reindex(table.index)], axis=1)
        table.attrs = attrs
        table.attrs["hepablate"]["deep_encoder"] = {
            "bundle": str(self.bundle.path),
            "id": self.bundle.id,
            "model": self.bundle.manifest.model,
            "kind": self.bundle.manifest.kind,
            "columns": list(embedded.columns),
        }
        return table


def load_encoder(deep: DeepEncoder) -> BundleEncoder:
    """The encoder bundle of an extraction's ``deep`` setting, verified; a bundle of another
    id than the configured one, or of a model without an image encoder, is a BundleError."""
    bundle = load_bundle(deep.bundle)
    if deep.id is not None and bundle.id != deep.id:
        raise BundleError(
            f"deep: {deep.bundle} is bundle {bundle.id[:12]}, not the configured {deep.id[:12]}"
        )
    if not hasattr(bundle.pipeline[-1], "embed"):
        raise BundleError(
            f"deep: {deep.bundle} holds a {bundle.manifest.kind} model, which has no "
            f"image encoder ({' and '.join(k for k, e in KINDS.items() if e.crops)} have one)"
        )
    return BundleEncoder(bundle)
