"""PNG previews of a virtual patient: axial slices through a tumour, before and after ablation.

Reads the written images (so a preview shows what is on disk), and draws four panels: the
pre-ablation CT, the same with the tumour (red), liver (green) and vessel (blue) outlines, the
post-ablation CT at the tumour's position in the follow-up scan, and the same with the
ablation-zone outline (yellow).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from hepablate.imaging.io import Volume, find_image, read_volume
from hepablate.simulate.shapes import RigidTransform

__all__ = ["write_preview"]

WINDOW_HU = (-100.0, 250.0)  # a liver window: level 75, width 350


def _read(folder: Path, name: str) -> Volume:
    (path,) = find_image(folder, name)
    return read_volume(path)


def _slice_index(volume: Volume, point_mm: np.ndarray) -> int:
    k = round((point_mm[2] - volume.grid.origin_mm[2]) / volume.grid.spacing_mm[2])
    return int(np.clip(k, 0, volume.grid.size[2] - 1))


def _extent(volume: Volume) -> tuple[float, float, float, float]:
    (x0, y0, _), (sx, sy, _) = volume.grid.origin_mm, volume.grid.spacing_mm
    nx, ny, _ = volume.grid.size
    return (x0 - sx / 2, x0 + sx * (nx - 0.5), y0 + sy * (ny - 0.5), y0 - sy / 2)


def write_preview(patient_folder: Path, out: Path, tumour_id: int, motion: RigidTransform) -> Path:
    """Write ``out`` (PNG) for one tumour of the patient whose images are in the folder."""
    pre, post = _read(patient_folder, "pre_ct"), _read(patient_folder, "post_ct")
    tumours, zones = _read(patient_folder, "pre_tumours"), _read(patient_folder, "post_ablation")
    liver, vessels = _read(patient_folder, "liver"), _read(patient_folder, "vessels")
    voxels = np.argwhere(tumours.array == tumour_id)
    centre_index = voxels.mean(axis=0)[::-1]  # x, y, z
    centre_mm = np.asarray(pre.grid.origin_mm) + centre_index * np.asarray(pre.grid.spacing_mm)
    k_pre = _slice_index(pre, centre_mm)
    k_post = _slice_index(post, motion.apply(centre_mm[None])[0])

    figure, axes = plt.subplots(1, 4, figsize=(16, 4.4), dpi=90)
    panels = [
        (pre, k_pre, "pre-ablation CT", []),
        (
            pre,
            k_pre,
            "tumour (red), liver (green), vessels (blue)",
            [(tumours, "red"), (liver, "lime"), (vessels, "deepskyblue")],
        ),
        (post, k_post, "post-ablation CT (patient moved)", []),
        (post, k_post, "ablation zone (yellow)", [(zones, "yellow")]),
    ]
    for axis, (volume, k, title, outlines) in zip(axes, panels, strict=True):
        axis.imshow(
            volume.array[k],
            cmap="gray",
            vmin=WINDOW_HU[0],
            vmax=WINDOW_HU[1],
            extent=_extent(volume),
        )
        for mask, colour in outlines:
            layer = mask.array[k]
            if layer.any():
                axis.contour(
                    (layer > 0).astype(float),
                    levels=[0.5],
                    colors=colour,
                    linewidths=0.9,
                    extent=_extent(mask),
                    origin="upper",
                )
        axis.set_title(title, fontsize=10)
        axis.set_axis_off()
    figure.suptitle(f"{patient_folder.name}, tumour {tumour_id}: axial slices, window L75 W350")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)
    return out
