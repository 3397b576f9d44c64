"""One virtual patient's anatomy: body, liver, vessel tree, tumours and ablation zones.

Everything is drawn from the patient's own random stream, in the anatomy frame (mm, LPS, the
liver region centred near the origin). The numbers and their sources are in docs/simulator.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from hepablate.simulate.shapes import (
    Ellipsoid,
    Shape,
    StarShape,
    Tube,
    distance_to_segments,
    grid_points,
    rotation_matrix,
)

__all__ = [
    "LARGE_VESSEL_RADIUS_MM",
    "AblationZone",
    "Anatomy",
    "TumourSite",
    "draw_anatomy",
    "place_cyst",
    "place_tumour",
    "plan_ablation",
]

Array = np.ndarray

# A vessel counts for "perivascular" and heat sink from a calibre of 3 mm (radius 1.5 mm).
LARGE_VESSEL_RADIUS_MM = 1.5
# Field of view of the liver-region scans (mm, centred on the origin).
FIELD_OF_VIEW_MM = (220.0, 175.0, 155.0)


@dataclass
class Anatomy:
    liver: StarShape
    vessels: list[Tube]
    # "portal" (portal vein tree) or "hepatic" (hepatic veins and IVC), one per vessel: they
    # fill with contrast at different times (hepablate.simulate.appearance).
    vessel_kinds: list[str]
    organs: list[tuple[str, Shape, float]]  # name, shape, HU; painted in order, under the liver
    beside: list[tuple[str, Shape, float]]  # painted over the liver (spine, aorta)
    bowel_seed: int  # the bowel loops drawn around the liver
    capsule_distance: Array  # distance (mm) to the liver surface, inside >0, on a 2 mm grid
    capsule_origin: Array
    capsule_spacing_mm: float
    # The map's voxels within each [low, high] depth asked for: placing a tumour asks the same
    # two or three ranges hundreds of times, and a scan of the whole map dominated its time.
    _depth_voxels: dict[tuple[float, float], Array] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def depth_mm(self, points: Array) -> Array:
        """Signed depth below the liver capsule (positive inside), trilinear on the 2 mm map."""
        index = (points - self.capsule_origin) / self.capsule_spacing_mm
        coords = index[..., ::-1].reshape(-1, 3).T  # map is indexed (z, y, x)
        values = ndimage.map_coordinates(self.capsule_distance, coords, order=1, mode="nearest")
        return values.reshape(points.shape[:-1])

    def sample_at_depth(
        self, rng: np.random.Generator, low_mm: float, high_mm: float
    ) -> Array | None:
        """A random point whose depth below the capsule is within [low, high] mm."""
        fits = self._depth_voxels.get((low_mm, high_mm))
        if fits is None:
            depth = self.capsule_distance.ravel()
            fits = np.flatnonzero((depth >= low_mm) & (depth <= high_mm))
            self._depth_voxels[(low_mm, high_mm)] = fits
        if fits.size == 0:
            return None
        index = np.unravel_index(int(rng.choice(fits)), self.capsule_distance.shape)
        jitter = rng.uniform(-0.5, 0.5, 3) * self.capsule_spacing_mm
        return self.capsule_origin + np.asarray(index[::-1]) * self.capsule_spacing_mm + jitter

    @property
    def large_vessels(self) -> list[Tube]:
        return [v for v in self.vessels if v.radius >= LARGE_VESSEL_RADIUS_MM]


@dataclass
class TumourSite:
    tumour_id: int
    shape: StarShape
    latent: float
    wanted_subcapsular: bool
    wanted_perivascular: bool

    @property
    def centre(self) -> Array:
        return self.shape.centre

    @property
    def diameter_mm(self) -> float:
        return float(2.0 * self.shape.radii[0])


@dataclass
class AblationZone:
    """Overlapping ablation ellipsoids, minus the tissue a vessel's blood flow kept cool."""

    ellipsoids: list[Ellipsoid]
    heat_sinks: list[Tube] = field(default_factory=list)  # tubes widened by the spared rim
    modality: str = "MWA"
    power_w: float = 0.0
    time_min: float = 0.0
    planned_margin_mm: float = 0.0

    def bounds(self) -> tuple[Array, Array]:
        lows, highs = zip(*(e.bounds() for e in self.ellipsoids), strict=True)
        return np.min(lows, axis=0), np.max(highs, axis=0)

    def inside(self, points: Array) -> Array:
        ablated = np.zeros(points.shape[:-1], dtype=bool)
        for ellipsoid in self.ellipsoids:
            ablated |= ellipsoid.inside(points)
        if self.heat_sinks and ablated.any():
            candidates = points[ablated]
            distance, which = distance_to_segments(candidates, self.heat_sinks)
            spared_radius = np.array([t.radius for t in self.heat_sinks])[which]
            ablated[ablated] = distance > spared_radius
        return ablated


@dataclass(frozen=True)
class _Lobes:
    amplitudes: Array
    frequencies: Array
    directions: Array
    phases: Array

    def shape(self, centre: Array, radii: Array, taper: float = 0.0) -> StarShape:
        return StarShape(
            centre, radii, self.amplitudes, self.frequencies, self.directions, self.phases, taper
        )


def _lobulation(
    rng: np.random.Generator, n: int, amplitude: float, frequency: tuple[float, float]
) -> _Lobes:
    directions = rng.normal(size=(n, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return _Lobes(
        amplitudes=amplitude * rng.uniform(0.5, 1.0, n) / np.sqrt(n),
        frequencies=rng.uniform(*frequency, n),
        directions=directions,
        phases=rng.uniform(0, 2 * np.pi, n),
    )


def _tube(
    start: Array | tuple[float, float, float],
    end: Array | tuple[float, float, float],
    radius: float,
) -> Tube:
    return Tube(np.asarray(start, dtype=float), np.asarray(end, dtype=float), float(radius))


def _vessel_tree(rng: np.random.Generator, liver_centre: Array) -> tuple[list[Tube], list[str]]:
    """Portal vein (from the hilum) and three hepatic veins (to the IVC), with jittered ends,
    and the kind of each tube ("portal" or "hepatic"; a small branch has its parent's)."""

    def jitter(point: tuple[float, float, float], mm: float = 7.0) -> Array:
        return liver_centre + np.asarray(point) + rng.normal(0.0, mm, 3)

    tubes: list[Tube] = []
    hilum = jitter((12.0, 18.0, -30.0), 4.0)
    portal_split = jitter((0.0, 8.0, -12.0), 4.0)
    tubes.append(_tube(hilum, portal_split, rng.uniform(5.0, 6.5)))
    kinds = ["portal"]
    for branch_end, twigs in (
        ((-45.0, 5.0, -5.0), ((-62.0, -15.0, -25.0), (-60.0, 25.0, 15.0))),
        ((32.0, -8.0, 8.0), ((50.0, -20.0, -10.0), (45.0, 5.0, 25.0))),
    ):
        end = jitter(branch_end)
        tubes.append(_tube(portal_split, end, rng.uniform(3.5, 4.5)))
        for twig in twigs:
            tubes.append(_tube(end, jitter(twig, 8.0), rng.uniform(0.9, 1.4)))
        kinds += ["portal"] * (1 + len(twigs))
    ivc_top = jitter((-8.0, 28.0, 40.0), 3.0)
    for vein_end in ((-62.0, 0.0, -12.0), (-12.0, -30.0, -22.0), (35.0, -18.0, 0.0)):
        end = jitter(vein_end, 8.0)
        middle = ivc_top + (end - ivc_top) * 0.55 + rng.normal(0.0, 3.0, 3)
        tubes.append(_tube(ivc_top, middle, rng.uniform(3.5, 5.0)))
        tubes.append(_tube(middle, end, rng.uniform(1.1, 1.7)))
        kinds += ["hepatic", "hepatic"]
    for _ in range(6):  # small branches below the 3 mm calibre that counts
        parent = int(rng.integers(len(tubes)))
        start = tubes[parent].end
        tubes.append(_tube(start, start + rng.normal(0.0, 14.0, 3), rng.uniform(0.6, 1.0)))
        kinds.append(kinds[parent])
    return tubes, kinds


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    """The liver region of one patient (without tumours)."""
    centre = np.array([-10.0, 0.0, 0.0]) + rng.normal(0.0, 3.0, 3)
    radii = np.array([80.0, 63.0, 60.0]) * rng.uniform(0.92, 1.06, 3)
    taper = rng.uniform(0.35, 0.5)
    liver = _lobulation(rng, 5, 0.12, (1.0, 2.5)).shape(centre, radii, taper)
    # The IVC runs in a groove of the posterior liver: a large vessel for heat sink and
    # perivascular location, and in the vessel mask.
    ivc = _tube((-18.0, 34.0, -200.0), (-18.0, 34.0, 200.0), 10.0)
    tree, kinds = _vessel_tree(rng, centre)
    vessels = [ivc, *tree]
    organs: list[tuple[str, Shape, float]] = [
        ("body", Ellipsoid(np.array([0.0, 5.0, 0.0]), np.array([150.0, 115.0, 1e4])), -95.0),
        ("muscle", Ellipsoid(np.array([0.0, 5.0, 0.0]), np.array([146.0, 111.0, 1e4])), 55.0),
        ("fat", Ellipsoid(np.array([0.0, 5.0, 0.0]), np.array([138.0, 104.0, 1e4])), -95.0),
        ("kidney", Ellipsoid(np.array([-62.0, 62.0, -58.0]), np.array([28.0, 24.0, 45.0])), 165.0),
        ("stomach", Ellipsoid(np.array([70.0, -5.0, 10.0]), np.array([32.0, 38.0, 45.0])), 15.0),
        (
            "stomach_air",
            Ellipsoid(np.array([70.0, -30.0, 20.0]), np.array([20.0, 12.0, 22.0])),
            -900.0,
        ),
    ]
    # Painted over the liver where they touch it, and never part of the liver mask.
    beside: list[tuple[str, Shape, float]] = [
        ("spine", Ellipsoid(np.array([0.0, 80.0, 0.0]), np.array([20.0, 17.0, 1e4])), 420.0),
        ("aorta", Tube(np.array([14.0, 54.0, -200.0]), np.array([14.0, 54.0, 200.0]), 11.0), 170.0),
    ]
    capsule, origin, spacing = _capsule_distance(liver)
    bowel = int(rng.integers(2**31))
    return Anatomy(
        liver, vessels, ["hepatic", *kinds], organs, beside, bowel, capsule, origin, spacing
    )


def _capsule_distance(liver: StarShape, spacing_mm: float = 2.0) -> tuple[Array, Array, float]:
    low, high = liver.bounds()
    low, high = low - 6.0, high + 6.0
    inside = liver.inside(
        grid_points([np.arange(low[a], high[a] + spacing_mm, spacing_mm) for a in range(3)])
    )
    depth = ndimage.distance_transform_edt(inside, sampling=spacing_mm)
    height = ndimage.distance_transform_edt(~inside, sampling=spacing_mm)
    # Voxel-centre distances, moved half a voxel to approximate the distance to the surface.
    signed = np.where(inside, depth - spacing_mm / 2, -(height - spacing_mm / 2))
    return signed.astype(np.float32), low, spacing_mm


def _vessel_gap(points: Array, vessels: list[Tube]) -> Array:
    """Distance from each point to the nearest vessel surface (negative inside a vessel)."""
    distance, which = distance_to_segments(points, vessels)
    return distance - np.array([v.radius for v in vessels])[which]


def place_tumour(
    rng: np.random.Generator,
    anatomy: Anatomy,
    tumour_id: int,
    diameter_mm: float,
    latent: float,
    *,
    subcapsular: bool,
    perivascular: bool,
    others: list[TumourSite],
) -> TumourSite:
    """A tumour of the given size, placed to match the wanted location as well as it can.

    The tumour's boundary is lobulated more for a more aggressive tumour (``latent``). Sites are
    drawn by rejection; after many failures the constraints on location are dropped, so every
    tumour is placed (the recorded location is measured afterwards on the real geometry).
    """
    radius = diameter_mm / 2.0
    irregularity = 0.04 + 0.08 / (1.0 + np.exp(-1.5 * latent))
    lobes = _lobulation(rng, 6, irregularity, (2.0, 4.5))
    large = anatomy.large_vessels
    best: tuple[float, StarShape] | None = None
    for attempt in range(600):
        strict = attempt < 450
        if perivascular and strict:
            vessel = large[int(rng.integers(len(large)))]
            along = vessel.start + rng.uniform(0.15, 0.85) * (vessel.end - vessel.start)
            direction = np.cross(vessel.end - vessel.start, rng.normal(size=3))
            direction /= np.linalg.norm(direction)
            centre = along + direction * (vessel.radius + radius * 1.05 + rng.uniform(0.5, 3.5))
        elif subcapsular and strict:
            centre = anatomy.sample_at_depth(rng, radius - 1.0, radius + 3.0)
        else:
            centre = anatomy.sample_at_depth(rng, radius + (6.0 if strict else 1.0), np.inf)
        if centre is None:
            continue
        # Tumours stay apart so that their ablation zones do not overlap (a voxel of a label
        # map names one zone); in a crowded liver the last attempts let them come closer.
        apart = 30.0 if strict else (15.0 if attempt < 550 else 2.0)
        if any(
            np.linalg.norm(centre - o.centre) < radius + o.shape.radii[0] + apart for o in others
        ):
            continue
        shape = lobes.shape(centre, np.full(3, radius))
        surface = shape.surface_points(400)
        depth = anatomy.depth_mm(surface)
        if depth.min() < -2.0:  # mostly outside the liver
            continue
        gap = float(_vessel_gap(surface, large).min())
        if not strict and (best is None or gap > best[0]):
            best = (gap, shape)
        if strict and (depth.min() < 5.0) != subcapsular:
            continue
        if gap < 0.5:  # the tumour would grow into a large vessel
            continue
        if strict and (gap < 5.0) != perivascular:
            continue
        return TumourSite(tumour_id, shape, latent, subcapsular, perivascular)
    if best is None:
        raise RuntimeError("could not place a tumour in this liver")  # pragma: no cover
    # A large tumour in a crowded liver: the site that keeps it farthest from the vessels.
    return TumourSite(tumour_id, best[1], latent, subcapsular, perivascular)


def _sphere_directions(n: int) -> Array:
    """``n`` unit vectors spread evenly over the sphere (a Fibonacci lattice)."""
    index = np.arange(n) + 0.5
    polar = np.arccos(1.0 - 2.0 * index / n)
    azimuth = np.pi * (1.0 + 5.0**0.5) * index
    return np.stack(
        [np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], -1
    )


def place_cyst(
    rng: np.random.Generator,
    anatomy: Anatomy,
    diameter_mm: float,
    tumours: list[TumourSite],
    zones: list[AblationZone],
    others: list[Ellipsoid],
) -> Ellipsoid | None:
    """A simple cyst: a smooth, nearly round sac inside the liver, clear of the tumours, their
    ablation zones (by 4 mm), every vessel and the other cysts.

    ``None`` when no site fits in 60 attempts: a crowded liver has one cyst fewer. A cyst is a
    look-alike for the images only; it is in no mask and changes no truth.
    """
    radii = diameter_mm / 2.0 * rng.uniform(0.9, 1.1, 3)
    axes = rotation_matrix(tuple(rng.uniform(-90.0, 90.0, 3)))
    reach = float(radii.max())
    directions = _sphere_directions(200)
    depth = float(np.ceil(reach)) + 2.0  # whole millimetres: few depth ranges to scan
    for _ in range(60):
        centre = anatomy.sample_at_depth(rng, depth, np.inf)
        if centre is None:
            return None
        if any(
            np.linalg.norm(centre - t.centre) < reach + t.shape.radii[0] * t.shape.max_factor + 8.0
            for t in tumours
        ) or any(np.linalg.norm(centre - c.centre) < reach + c.radii.max() + 3.0 for c in others):
            continue
        halo = np.vstack([centre, centre + directions * (reach + 4.0)])
        if any(zone.inside(halo).any() for zone in zones):
            continue
        if _vessel_gap(centre + directions * (reach + 1.0), anatomy.vessels).min() <= 0.0:
            continue
        return Ellipsoid(centre, radii, axes)
    return None


# Zone diameter (short axis, mm) = c * (power W * time min) ** 0.33: manufacturer-table-like.
_ZONE_CONSTANT = {"RFA": 3.3, "MWA": 4.3}
_POWERS_W = {"RFA": (80.0, 100.0, 120.0, 150.0, 200.0), "MWA": (60.0, 80.0, 100.0)}
_TIME_LIMITS_MIN = {"RFA": (6.0, 20.0), "MWA": (3.0, 12.0)}
# Blood flow keeps tissue within this many vessel radii of a large vessel below lethal heat.
_HEAT_SINK_RADII = {"RFA": 0.6, "MWA": 0.3}
PLACEMENT_ERROR_MM = 1.7  # per axis: about 2.7 mm in 3-D


def _settings_for(
    modality: str, diameter_mm: float, rng: np.random.Generator
) -> tuple[float, float]:
    """Power and whole-minute time for a zone of ``diameter_mm``, within the device's limits.

    The operator takes one of the powers that reach the diameter within the time limit (the
    highest power at the longest time when none does).
    """
    energy = (diameter_mm / _ZONE_CONSTANT[modality]) ** (1.0 / 0.33)
    low, high = _TIME_LIMITS_MIN[modality]
    powers = [p for p in _POWERS_W[modality] if energy / p <= high]
    if not powers:
        return _POWERS_W[modality][-1], high
    power = float(rng.choice(powers))
    return power, float(np.clip(np.round(energy / power), low, high))


def zone_diameter_mm(modality: str, power_w: float, time_min: float) -> float:
    return float(_ZONE_CONSTANT[modality] * (power_w * time_min) ** 0.33)


def plan_ablation(
    rng: np.random.Generator, anatomy: Anatomy, tumour: TumourSite, modality: str
) -> AblationZone:
    """What the operator aimed for, and what the tissue received.

    The operator aims at a margin of 5.5-10.5 mm and picks power and time from the device table;
    a tumour too large for one zone gets two or three overlapping zones along one axis. The
    achieved zone differs from the nominal one by device variability (about 10% of the
    diameter), its centre by the needle placement error, and near a large vessel by heat sink.
    """
    planned_margin = rng.uniform(5.5, 10.5)
    wanted = tumour.diameter_mm + 2.0 * planned_margin
    power, minutes = _settings_for(modality, wanted, rng)
    nominal = zone_diameter_mm(modality, power, minutes)
    count = 1 if nominal >= wanted - 2.0 else (2 if tumour.diameter_mm < 35 else 3)
    electrode = rotation_matrix(tuple(rng.normal(0.0, 25.0, 3)))  # long axis mostly head-feet
    short = nominal / 2.0 * (1.0 + rng.normal(0.0, 0.10))
    long = short * rng.uniform(1.2, 1.45)
    spread_axis = electrode[:, 0]
    offsets = [0.0] if count == 1 else list(np.linspace(-1.0, 1.0, count) * (wanted - nominal) / 2)
    placement = rng.normal(0.0, PLACEMENT_ERROR_MM, 3)
    ellipsoids = []
    for offset in offsets:
        jitter = rng.normal(0.0, 0.8, 3) if count > 1 else 0.0
        centre = tumour.centre + placement + offset * spread_axis + jitter
        radii = np.array([short, short, long])
        ellipsoids.append(Ellipsoid(centre, radii, electrode))
    zone = AblationZone(ellipsoids, [], modality, power, minutes * count, planned_margin)
    low, high = zone.bounds()
    sinks = []
    for vessel in anatomy.large_vessels:
        sample = vessel.start + np.linspace(0, 1, 25)[:, None] * (vessel.end - vessel.start)
        if np.any(np.all((sample > low - vessel.radius) & (sample < high + vessel.radius), axis=1)):
            spared = vessel.radius * (1.0 + _HEAT_SINK_RADII[modality])
            sinks.append(Tube(vessel.start, vessel.end, spared))
    zone.heat_sinks = sinks
    return zone
