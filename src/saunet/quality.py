"""Quality control: a confidence per body and a verdict per scan (``ok`` / ``check`` / ``fail``) with reasons a
person understands. The thresholds are calibrated on cross-validated predictions and on scans of contrasts the
model never saw (reports/qc); docs/measurements.md explains each reason.

What the model was trained on is a :class:`TrainingProfile` in its checkpoint (and ONNX metadata): the range of
slice spacing, in-plane spacing, cranio-caudal field of view and two intensity statistics of the training scans,
the intensity statistics also per training data set.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk

from saunet.labels import LEVELS
from saunet.orientation import Layout
from saunet.postprocessing import cut_by_field, label_components, present_values
from saunet.preprocessing import normalise_intensities, random_curve

CLIP_PERCENTILES = (0.5, 99.5)  # the intensity statistics' units: those of models that normalise as the shipped one
SHELL_MM = 5.0  # the surroundings of the bodies whose intensity the bodies are compared with
# A scan's statistic may lie this share of the training range's width beyond it before it counts as unlike.
RANGE_MARGIN = 0.25
SPACING_FACTOR = 1.5  # spacings up to this factor outside the trained range are still familiar
# Slices up to this factor thicker than the thickest trained are familiar: the CV models scored the same on their
# test scans thinned to 4 mm (2x lumbar-t2's, 4x water-fat's spacing) as on the scans as they are (reports/levels).
THICKER_SLICES_FACTOR = 2.5
# A model trained with random contrast curves (TrainConfig.contrast_curves) is judged against its training scans
# under this many curves each (training_profile).
CURVE_DRAWS, CURVE_SEED = 20, 0


@dataclass(frozen=True)
class Thresholds:
    """Where QC speaks up (reports/qc: chosen on cross-validated predictions)."""

    body_confidence: float = 0.55  # mean probability margin inside a body
    level_agreement: float = 0.6  # share of a body's level votes for the name it got
    naming_margin: float = 0.15  # how much better the chosen names score than the run shifted by one level
    volume_ratio: tuple[float, float] = (0.5, 1.8)  # a body's volume against the median of the others
    volume_cm3: tuple[float, float] = (5.0, 90.0)
    min_bodies: int = 5  # a lumbar scan shows L1-L5 at least
    fail_confidence: float = 0.3  # mean body confidence of the scan below which it fails
    member_disagreement: float = 0.25  # an ensemble's: share of its bodies' voxels some member classes otherwise
    outline_agreement: float = 0.8  # Dice of a body's outline by the level network and by the outline refiner


THRESHOLDS = Thresholds()
UNLIKE, GAP = "image unlike the training scans: ", "gap in the level sequence: "  # reasons no threshold moves
FALLBACK_MODEL = "fallback_model"  # the statistic naming the fallback model that made a handed-over result
STATISTICS = ("slice_spacing_mm", "in_plane_spacing_mm", "field_cc_mm", "body_intensity", "body_contrast")
INTENSITY = ("body_intensity", "body_contrast")


@dataclass
class TrainingProfile:
    """Ranges (min, max) of each of :data:`STATISTICS` over the training scans, and of the :data:`INTENSITY`
    statistics over each training data set (``data_sets``: name -> ranges); empty: unknown.

    A model trained on two contrasts has seen each, not what lies between them: a T2 scan's bodies are darker
    than their surroundings in one set and brighter in the other, and a contrast whose bodies match their
    surroundings falls inside the union's range yet is like neither set.
    """

    ranges: dict = field(default_factory=dict)
    data_sets: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        ranges = {k: list(v) for k, v in self.ranges.items()}
        if not self.data_sets:
            return ranges
        return {**ranges, "data_sets": {name: {k: list(v) for k, v in r.items()} for name, r in self.data_sets.items()}}

    @classmethod
    def from_dict(cls, values: dict | None) -> TrainingProfile:
        values = dict(values or {})
        sets = values.pop("data_sets", {})
        return cls({k: tuple(v) for k, v in values.items()},
                   {name: {k: tuple(v) for k, v in r.items()} for name, r in sets.items()})


def scan_statistics(array: np.ndarray, spacing: tuple[float, ...], layout: Layout, bodies: np.ndarray,
                    normalised: np.ndarray | None = None) -> dict:
    """The scan's :data:`STATISTICS`: spacings and field of view (mm) from the grid, and the median intensity
    inside the vertebral bodies ``bodies`` and its difference to their surroundings (a shell of ``SHELL_MM``), in
    the units the network sees (the scan clipped to :data:`CLIP_PERCENTILES` and standardised; ``normalised``:
    the scan already so, as the segmenter prepared it)."""
    stats = grid_statistics(array.shape, spacing, layout)
    if not bodies.any():
        return {**stats, "body_intensity": float("nan"), "body_contrast": float("nan")}
    image = normalise_intensities(array, CLIP_PERCENTILES) if normalised is None else normalised
    return {**stats, **body_intensities(image, bodies, *surroundings(bodies, spacing))}


def grid_statistics(shape: tuple[int, ...], spacing: tuple[float, ...], layout: Layout) -> dict:
    """The :data:`STATISTICS` of the grid alone: slice and in-plane spacing, cranio-caudal field of view (mm)."""
    canonical = layout.spacing(spacing)
    return {"slice_spacing_mm": canonical[0], "in_plane_spacing_mm": max(canonical[1:]),
            "field_cc_mm": shape[layout.axes[1]] * canonical[1]}


def surroundings(bodies: np.ndarray, spacing: tuple[float, ...]) -> tuple[tuple[slice, ...], np.ndarray]:
    """The box around the (non-empty) ``bodies`` grown by ``SHELL_MM``, and the shell of that width around them
    in it."""
    radius = [max(1, int(round(SHELL_MM / s))) for s in spacing]
    occupied = np.argwhere(bodies)
    box = tuple(slice(max(int(lo) - r, 0), int(hi) + r + 1) for lo, hi, r in zip(occupied.min(0), occupied.max(0), radius))
    near = bodies[box].astype(np.uint8)  # the dilation needs only the bodies' neighbourhood
    grown = sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.GetImageFromArray(near), radius[::-1])) > 0
    return box, grown & ~bodies[box]


def body_intensities(image: np.ndarray, bodies: np.ndarray, box: tuple[slice, ...], shell: np.ndarray) -> dict:
    """The :data:`INTENSITY` statistics of ``image``: the bodies' median, and it less their ``shell``'s (in ``box``)."""
    inside = float(np.median(image[bodies]))
    around = image[box][shell]
    return {"body_intensity": inside, "body_contrast": inside - float(np.median(around)) if around.size else 0.0}


def ranges_of(statistics: list[dict], names: tuple[str, ...]) -> dict:
    """(min, max) of each of ``names`` over ``statistics``."""
    return {k: (float(np.nanmin([s[k] for s in statistics])), float(np.nanmax([s[k] for s in statistics])))
            for k in names}


def profile_of(statistics: list[dict], data_sets: list[str] | None = None) -> TrainingProfile:
    """The ranges of the training scans' statistics; with ``data_sets`` (each scan's set), the intensity ranges
    of each set too."""
    sets = sorted(set(data_sets or []))
    by_set = {name: ranges_of([s for s, d in zip(statistics, data_sets) if d == name], INTENSITY) for name in sets}
    return TrainingProfile(ranges_of(statistics, STATISTICS), by_set if len(sets) > 1 else {})


def outside(value: float, low: float, high: float, margin: float = RANGE_MARGIN) -> bool:
    """Beyond the range widened by ``margin`` of its width on each side."""
    widening = margin * (high - low)
    return value > high + widening or value < low - widening


def unlike_every_set(statistics: dict, data_sets: dict, margin: float = RANGE_MARGIN) -> list[str]:
    """A reason when the scan's intensity statistics lie outside the ranges of each training data set (for one
    statistic or another), though perhaps inside their union; none when one set's ranges hold them all."""
    values = {k: statistics.get(k, float("nan")) for k in INTENSITY}
    if not data_sets or not all(np.isfinite(v) for v in values.values()):
        return []
    if any(not any(outside(values[k], *r[k], margin) for k in INTENSITY) for r in data_sets.values()):
        return []
    seen = "; ".join(f"{name}: " + ", ".join(f"{k.replace('_', ' ')} {lo:.2f} to {hi:.2f}" for k, (lo, hi) in r.items())
                     for name, r in data_sets.items())
    shown = ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in values.items())
    return [f"{shown}: like no training data set ({seen})"]


def unfamiliar(statistics: dict, profile: TrainingProfile, margin: float = RANGE_MARGIN) -> list[str]:
    """Reasons the scan is unlike the training scans, one per statistic outside the trained range (widened by
    ``margin`` of its width), and one when its intensities match no training data set (:func:`unlike_every_set`)."""
    reasons, beyond_union = [], set()
    for name, (low, high) in profile.ranges.items():
        value = statistics.get(name, float("nan"))
        if not np.isfinite(value):
            continue
        if name.endswith("spacing_mm"):
            thicker = THICKER_SLICES_FACTOR if name == "slice_spacing_mm" else SPACING_FACTOR
            beyond = value > high * thicker or value < low / SPACING_FACTOR
        else:
            beyond = outside(value, low, high, margin)
        if beyond:
            beyond_union.add(name)
            reasons.append(f"{name.replace('_', ' ')} {value:.2f} outside the trained range {low:.2f}-{high:.2f}")
    if not beyond_union & set(INTENSITY):  # outside the union already says it
        reasons += unlike_every_set(statistics, profile.data_sets, margin)
    return reasons


class VoteFlag(str):
    """A body's flag that its own level votes raise (:meth:`BodyQuality.raises_scan`); written out as its text."""


@dataclass
class BodyQuality:
    level: int
    name: str
    confidence: float  # mean (p of its level - highest other p, background included) inside the body
    level_agreement: float  # share of the body's foreground probability on its own level
    volume_cm3: float
    flags: list[str]
    cut_by_field: bool = False  # reaches the cranio-caudal edge of the field of view: only part of it imaged
    outline_agreement: float = float("nan")  # Dice of its outline by the level network and by the refiner (nan: none)

    @property
    def verdict(self) -> str:
        return "check" if self.flags else "ok"

    def raises_scan(self, flag: str) -> bool:
        """Whether ``flag`` makes the scan a check, not only this body: any flag but the body's own level votes
        where the outline refiner's outline agrees with the level network's, which judges the outline instead; the
        names are judged over the whole run of bodies (the naming margin). On cross-validated results the votes
        flagged bodies named right on well segmented scans (reports/qc/outline-and-left-out)."""
        return not (isinstance(flag, VoteFlag) and np.isfinite(self.outline_agreement))

    @property
    def remarks(self) -> list[str]:
        """Its flags, and whether it is only partly imaged (which is no flag)."""
        return self.flags + (["cut by the field of view: volume and heights are partial"] if self.cut_by_field else [])


@dataclass
class Verdict:
    verdict: str  # ok, check or fail
    reasons: list[str]
    bodies: list[BodyQuality]
    statistics: dict

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "reasons": self.reasons, "statistics": self.statistics,
                "bodies": [{**asdict(b), "verdict": b.verdict} for b in self.bodies]}


def model_votes(own: np.ndarray, rest: np.ndarray) -> tuple[float, float]:
    """Confidence and level agreement of a body from the probabilities of its own level at its voxels (N,) and
    of the other levels (K-1, N)."""
    background = 1.0 - own - rest.sum(0)
    rival = np.maximum(rest.max(0), background) if len(rest) else background
    return float(np.mean(own - rival)), float(own.sum() / max(own.sum() + rest.sum(), 1e-9))


def body_quality(bodies: np.ndarray, classes: np.ndarray, probabilities: np.ndarray | None, spacing: tuple[float, ...],
                 names: dict[int, str] = LEVELS, thresholds: Thresholds = THRESHOLDS,
                 cut: frozenset[int] = frozenset(), refined: np.ndarray | None = None) -> list[BodyQuality]:
    """Per body value in ``bodies`` (``classes`` its class index 1..K per voxel, ``probabilities`` (K, ...) or
    None for a map without a model): the model's confidence, the agreement of its level votes, and its volume
    against the other bodies'; with ``refined`` (the same values, the outline refiner's redrawing of ``bodies``)
    how far the two outlines agree. Bodies in ``cut`` are only partly imaged: their size and the model's confidence
    at the cut say nothing about the segmentation, so only their level votes are judged."""
    voxel_cm3 = float(np.prod(spacing)) / 1000.0
    where = np.nonzero(bodies)  # gathered once: a scan is mostly background
    ids, body_classes = bodies[where], classes[where]
    inside_probabilities = None if probabilities is None else probabilities[(slice(None), *where)]
    outlines = None if refined is None else outline_agreements(bodies, refined)
    found = []
    for value in (int(v) for v in np.unique(ids)):
        mine = ids == value
        votes = (float("nan"), float("nan"))
        if inside_probabilities is not None:
            k = int(np.bincount(body_classes[mine]).argmax()) - 1
            p = inside_probabilities[:, mine]
            votes = model_votes(p[k], np.delete(p, k, axis=0))
        outline = float("nan") if outlines is None else float(outlines[value])
        found.append((value, *votes, mine.sum() * voxel_cm3, outline))
    ratios = volume_ratios([v for *_, v, _ in found])
    return [BodyQuality(value, names.get(value, f"body {value}"), confidence, agreement, volume,
                        body_flags(confidence, agreement, volume, ratio, value not in cut, thresholds, outline),
                        value in cut, outline)
            for (value, confidence, agreement, volume, outline), ratio in zip(found, ratios)]


def outline_agreements(bodies: np.ndarray, refined: np.ndarray) -> np.ndarray:
    """Dice of each value 0..max of ``bodies`` against the same value of ``refined``, counted in one pass over the
    box (nan for a value neither holds). Not evaluation.overlap_metrics: that module loads PyTorch and MONAI, which
    `saunet segment` never imports."""
    count = int(max(bodies.max(initial=0), refined.max(initial=0))) + 1
    agreed = np.bincount(bodies[bodies == refined].ravel(), minlength=count)
    total = np.bincount(bodies.ravel(), minlength=count) + np.bincount(refined.ravel(), minlength=count)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 2.0 * agreed / total


def volume_ratios(volumes: list[float]) -> list[float]:
    """Each body's volume against the median of the others' (1 for a lone body)."""
    return [v / np.median(volumes[:i] + volumes[i + 1:]) if len(volumes) > 1 else 1.0 for i, v in enumerate(volumes)]


def body_flags(confidence: float, agreement: float, volume: float, ratio: float, whole: bool,
               thresholds: Thresholds = THRESHOLDS, outline: float = float("nan")) -> list[str]:
    """What QC says of one body: its confidence, level votes and volume (``ratio``: against the other bodies'),
    and how far the level network's and the refiner's outlines of it agree (``outline``, Dice; nan: not refined),
    all but the votes judged only when the body is ``whole``ly imaged."""
    return [text for bad, text in (
        (whole and confidence < thresholds.body_confidence, VoteFlag(f"low confidence {confidence:.2f}")),
        (agreement < thresholds.level_agreement, VoteFlag(f"only {agreement:.0%} of its votes for this level")),
        (whole and not thresholds.volume_ratio[0] <= ratio <= thresholds.volume_ratio[1],
         f"volume {ratio:.1f} x the other bodies'"),
        (whole and not thresholds.volume_cm3[0] <= volume <= thresholds.volume_cm3[1],
         f"implausible volume {volume:.1f} cm3"),
        (whole and outline < thresholds.outline_agreement,
         f"outline in doubt: the level network and the outline refiner agree on {outline:.0%} of it"),
    ) if bad]


def naming_margin(classes: np.ndarray, probabilities: np.ndarray) -> float:
    """How much more of the bodies' probability the chosen level names hold than the same run of names shifted
    one level up or down: (chosen - best shifted) / the larger of the two, in [-1, 1]. Near 0 or below: the names
    could be one level off."""
    count = probabilities.shape[0]
    where = np.nonzero(classes)
    named = classes[where]
    mass = np.stack([np.bincount(named, weights=p[where], minlength=count + 1) for p in probabilities])
    present = [int(k) for k in np.unique(named)]
    if not present:
        return 0.0
    chosen = sum(mass[k - 1, k] for k in present)
    shifted = [sum(mass[k - 1 + s, k] for k in present if 0 <= k - 1 + s < count) for s in (-1, 1)]
    larger = max(chosen, *shifted)
    return float((chosen - max(shifted)) / larger) if larger > 0 else 0.0


def member_disagreements(member_classes: np.ndarray, mean_classes: np.ndarray) -> tuple[float, float]:
    """The share of the voxels an ensemble's mean logits class as a body (``mean_classes``, on the network grid) where
    some member alone would class them otherwise (``member_classes``: (members, ...)): as another level or background,
    and as another level only. Where the outline refiner redraws the bodies, their outlines are judged by its agreement
    with the level network (:func:`outline_agreements`) and only the second counts: a member's background at a body's
    edge says nothing of its name. Models trained alike agree on scans like their training scans and part where a
    scan is unlike them; both 1.0 when the ensemble finds no body."""
    bodies = mean_classes > 0
    if not bodies.any():
        return 1.0, 1.0
    members, mean = member_classes[:, bodies], mean_classes[bodies]
    differ = members != mean
    return float(differ.any(0).mean()), float((differ & (members > 0)).any(0).mean())


def level_gaps(levels: np.ndarray) -> list[int]:
    """Level values missing between the highest and the lowest level present."""
    present = [int(v) for v in present_values(levels)]
    return [v for v in range(present[0], present[-1] + 1) if v not in present] if present else []


def scan_verdict(bodies: list[BodyQuality], statistics: dict, profile: TrainingProfile, gaps: list[int],
                 margin: float | None, thresholds: Thresholds = THRESHOLDS, disagreement: float | None = None,
                 said: list[str] = (), name_disagreement: float | None = None) -> Verdict:
    """``fail``: no or almost no bodies, or confidence low throughout; ``check``: anything else QC noticed
    (``disagreement``: an ensemble's :func:`member_disagreements`, None for one model; ``name_disagreement``: the same
    on names alone, judged instead where given, for refined bodies; ``said``: reasons no threshold moves, already said
    of this scan, as :func:`rejudged` keeps them). A body's flags make the scan a check as
    :meth:`BodyQuality.raises_scan` says."""
    fails, checks = [], []
    if len(bodies) < 3:
        fails.append(f"{len(bodies)} vertebral bodies found; a lumbar scan shows at least 5")
    elif len(bodies) < thresholds.min_bodies:
        checks.append(f"only {len(bodies)} vertebral bodies found; a lumbar scan shows at least 5")
    if bodies and np.mean([b.confidence for b in bodies]) < thresholds.fail_confidence:
        fails.append(f"low confidence throughout (mean {np.mean([b.confidence for b in bodies]):.2f})")
    checks += [UNLIKE + r for r in unfamiliar(statistics, profile)]
    if gaps:
        checks.append(GAP + ", ".join(LEVELS.get(v, str(v)) for v in gaps) + " missing")
    checks += said
    if margin is not None and bodies and margin < thresholds.naming_margin:
        checks.append(f"level names uncertain: one level up or down fits almost as well (margin {margin:.2f})")
    if name_disagreement is not None and name_disagreement > thresholds.member_disagreement:
        checks.append(f"the ensemble's models disagree on the names of {name_disagreement:.0%} of the bodies' voxels "
                      f"(more than {thresholds.member_disagreement:.0%}: its names are in doubt)")
    elif name_disagreement is None and disagreement is not None and disagreement > thresholds.member_disagreement:
        checks.append(f"the ensemble's models disagree on {disagreement:.0%} of the bodies' voxels "
                      f"(more than {thresholds.member_disagreement:.0%}: its names or outlines are in doubt)")
    checks += [f"{b.name}: {flag}" for b in bodies for flag in b.flags if b.raises_scan(flag)]
    verdict = "fail" if fails else "check" if checks else "ok"
    judged = {} if name_disagreement is None else {"member_name_disagreement": name_disagreement}
    return Verdict(verdict, fails + checks, bodies,
                   {**statistics, "naming_margin": margin, "member_disagreement": disagreement, **judged})


def rejudged(saved: dict, thresholds: Thresholds, profile: TrainingProfile | None = None) -> Verdict:
    """A saved verdict (:meth:`Verdict.to_dict`) judged again with other ``thresholds``, no model run: each body's
    flags from its saved confidence, votes and volume, the scan's from its saved naming margin and members'
    disagreement; what no threshold moves (an image unlike the training scans, a gap in the levels) as it was said,
    or, given another training ``profile``, the image's likeness judged against that one."""
    ratios = volume_ratios([b["volume_cm3"] for b in saved["bodies"]])
    outlines = [float("nan") if b.get("outline_agreement") is None else b["outline_agreement"]  # JSON's null: nan
                for b in saved["bodies"]]
    bodies = [BodyQuality(b["level"], b["name"], b["confidence"], b["level_agreement"], b["volume_cm3"],
                          body_flags(b["confidence"], b["level_agreement"], b["volume_cm3"], ratio,
                                     not b["cut_by_field"], thresholds, outline), b["cut_by_field"], outline)
              for b, ratio, outline in zip(saved["bodies"], ratios, outlines)]
    statistics = saved["statistics"]
    said = [r for r in saved["reasons"] if r.startswith(GAP) or (profile is None and r.startswith(UNLIKE))]
    return scan_verdict(bodies, statistics, profile or TrainingProfile(), [], statistics.get("naming_margin"), thresholds,
                        statistics.get("member_disagreement"), said, statistics.get("member_name_disagreement"))


def unlike_contrast(statistics: dict, profile: TrainingProfile) -> bool:
    """Whether the bodies' intensity statistics are unlike the training scans' (:func:`unfamiliar`)."""
    return bool(unfamiliar({name: statistics.get(name, float("nan")) for name in INTENSITY}, profile))


def fallback_triggers(verdict: Verdict, contrast_unlike: bool, thresholds: Thresholds = THRESHOLDS) -> list[str]:
    """What in ``verdict`` calls for a second opinion from a model trained for contrasts its model's training scans
    lack (none: nothing does): the bodies' contrast unlike the training scans' (``contrast_unlike``), fewer bodies
    than a lumbar scan shows, or a failed result: the signs a model trained on two contrasts leaves where it
    segments a third one badly (reports/levels/fallback)."""
    triggers = ["the bodies' intensities are unlike the training scans'"] if contrast_unlike else []
    if len(verdict.bodies) < thresholds.min_bodies:
        triggers.append(f"{len(verdict.bodies)} vertebral bodies found")
    if verdict.verdict == "fail":
        triggers.append("its quality control failed it")
    return triggers


def handed_over(verdict: Verdict, first: Verdict, triggers: list[str], model: str) -> Verdict:
    """The fallback ``model``'s ``verdict`` on its own result (judged against the contrasts it was trained for, its
    training profile), said to be that: why the first model's result (QC'd ``first``) was not kept (its
    ``triggers``) heads the reasons whatever the verdict, and that result's reasons go among the statistics."""
    said = f"segmented by the fallback model {model}, as the first model's result was in doubt: " + "; ".join(triggers)
    return Verdict(verdict.verdict, [said, *verdict.reasons], verdict.bodies,
                   {**verdict.statistics, FALLBACK_MODEL: model, "first_model_reasons": first.reasons})


def made_by_fallback(statistics: dict) -> bool:
    """Whether a verdict's ``statistics`` (a :class:`Verdict`'s, or as saved) are of a result :func:`handed_over`."""
    return FALLBACK_MODEL in statistics


def assess(array: np.ndarray, spacing: tuple[float, ...], labels: np.ndarray, probabilities: np.ndarray,
           layout: Layout, label_map, profile: TrainingProfile, thresholds: Thresholds = THRESHOLDS,
           normalised: np.ndarray | None = None, disagreement: float | None = None,
           box: tuple[slice, ...] | None = None, refined: np.ndarray | None = None,
           name_disagreement: float | None = None) -> Verdict:
    """QC of a segmentation: ``labels`` (the data set's values) and ``probabilities`` (K, ...) of the scan
    ``array`` on its grid, by a model with ``label_map`` trained on scans of ``profile`` (``normalised``: the
    scan normalised to :data:`CLIP_PERCENTILES`, if at hand). ``box``: the box of the scan's array that the
    probabilities cover and that holds every labelled voxel (None: the whole scan). ``refined``: the outline
    refiner's redrawing of ``labels`` (the data set's values; None: not refined). ``disagreement`` and
    ``name_disagreement``: an ensemble's members' (:func:`scan_verdict`). A binary model's bodies are its connected
    components."""
    classes = label_map.apply(labels)
    inside = box if box is not None else (Ellipsis,)
    if label_map.classes is None:
        bodies, names, margin, gaps = label_components(classes > 0), {}, None, []
    else:
        bodies, names, margin, gaps = labels, LEVELS, naming_margin(classes[inside], probabilities), level_gaps(labels)
    redrawn = None if refined is None or label_map.classes is None else refined[inside]
    quality = body_quality(bodies[inside], classes[inside], probabilities, spacing, names, thresholds,
                           cut_by_field(bodies, layout.axes[1]), redrawn)
    statistics = scan_statistics(array, spacing, layout, labels > 0, normalised)
    return scan_verdict(quality, statistics, profile, gaps, margin, thresholds, disagreement,
                        name_disagreement=name_disagreement)


def assess_map(levels: np.ndarray, spacing: tuple[float, ...], thresholds: Thresholds = THRESHOLDS) -> Verdict:
    """QC of a level map without its model: number of bodies, gaps, volumes."""
    quality = body_quality(levels, levels, None, spacing, LEVELS, thresholds)
    return scan_verdict(quality, {}, TrainingProfile(), level_gaps(levels), None, thresholds)


def training_profile(cases: list, slice_axis: int | None = None, contrast_curves: float = 0.0) -> TrainingProfile:
    """The :class:`TrainingProfile` of training ``cases`` (saunet.datasets.Case), bodies from their reference masks.
    ``contrast_curves``: the share of stacks the model was trained with through random intensity curves
    (TrainConfig.contrast_curves); where not 0, the intensity ranges are those of the scans as they are and under
    :data:`CURVE_DRAWS` curves each, drawn with a fixed seed: the contrasts such a model was trained for."""
    rng = np.random.default_rng(CURVE_SEED)
    statistics, data_sets = [], []
    for case in cases:
        drawn = drawn_statistics(case, slice_axis, CURVE_DRAWS if contrast_curves else 0, rng)
        statistics += drawn
        data_sets += [case.dataset] * len(drawn)
    return profile_of(statistics, data_sets)


def case_statistics(case, slice_axis: int | None = None) -> dict:
    """A training case's :data:`STATISTICS`, its bodies from its reference mask."""
    return drawn_statistics(case, slice_axis)[0]


def drawn_statistics(case, slice_axis: int | None = None, curves: int = 0,
                     rng: np.random.Generator | None = None) -> list[dict]:
    """A training case's :data:`STATISTICS` as it is, then with its intensities through each of ``curves`` random
    curves (:func:`saunet.preprocessing.random_curve`, drawn from ``rng``) as training with contrast curves shows it."""
    from saunet.datasets import read_case
    from saunet.orientation import volume_layout

    image, label = read_case(case)
    bodies, layout = label.array > 0, volume_layout(image, slice_axis)
    if not bodies.any():
        return [scan_statistics(image.array, image.spacing, layout, bodies)]
    grid, around = grid_statistics(image.array.shape, image.spacing, layout), surroundings(bodies, image.spacing)
    normalised = normalise_intensities(image.array, CLIP_PERCENTILES)  # as scan_statistics normalises, once
    seen = itertools.chain([normalised], (random_curve(normalised, rng) for _ in range(curves)))  # one curve at a time
    return [{**grid, **body_intensities(intensities, bodies, *around)} for intensities in seen]
