"""Quality control: body confidence, level naming, scan verdicts, and images unlike the training scans."""

from dataclasses import replace

import numpy as np

from saunet.inference import averaged_in_place
from saunet.orientation import Layout
from saunet.postprocessing import cut_by_field
from saunet.quality import (
    INTENSITY,
    THRESHOLDS,
    UNLIKE,
    TrainingProfile,
    assess_map,
    body_quality,
    fallback_triggers,
    handed_over,
    level_gaps,
    member_disagreements,
    naming_margin,
    profile_of,
    rejudged,
    scan_statistics,
    scan_verdict,
    training_profile,
    unfamiliar,
)

SPACING = (4.0, 1.0, 1.0)


def column(levels=(3, 4, 5, 6, 7), shape=(6, 200, 40), height=24, gap=8):
    """Canonical-layout level map: bodies of ``height`` voxels stacked from the top with ``gap`` between."""
    labels = np.zeros(shape, np.uint8)
    for i, value in enumerate(levels):
        top = shape[1] - 10 - i * (height + gap)
        labels[1:5, top - height : top, 8:32] = value
    return labels


def probabilities_for(labels, levels=7, sure=0.95):
    """(K, ...) probabilities that put ``sure`` on each voxel's own level and the rest on background."""
    p = np.zeros((levels, *labels.shape), np.float32)
    for value in range(1, levels + 1):
        p[value - 1][labels == value] = sure
    return p


def test_confident_bodies_pass_and_unsure_ones_are_flagged():
    labels = column()
    p = probabilities_for(labels)
    p[4][labels == 5], p[3][labels == 5] = 0.45, 0.40  # L3: split between L3 and L2
    bodies = {b.name: b for b in body_quality(labels, labels, p, SPACING)}
    assert bodies["L1"].verdict == "ok" and bodies["L1"].confidence > 0.9
    assert bodies["L3"].verdict == "check" and bodies["L3"].confidence < 0.1
    assert any("votes" in flag for flag in bodies["L3"].flags)


def test_a_body_of_implausible_size_is_flagged():
    labels = column()
    labels[labels == 6] = 0
    labels[1:5, 80:83, 8:32] = 6  # L4 a sliver
    bodies = {b.name: b for b in body_quality(labels, labels, probabilities_for(labels), SPACING)}
    assert any("volume" in flag for flag in bodies["L4"].flags)


def test_names_shifted_by_one_level_have_no_margin():
    labels = column()
    right = probabilities_for(labels)
    assert naming_margin(labels, right) > 0.9
    shifted = np.roll(right, 1, axis=0)  # the model votes one level lower than the names
    assert naming_margin(labels, shifted) < 0


def test_gaps_in_the_level_sequence():
    assert level_gaps(column((3, 4, 6, 7))) == [5]
    assert level_gaps(column()) == []


def test_verdicts():
    labels = column()
    bodies = body_quality(labels, labels, probabilities_for(labels), SPACING)
    assert scan_verdict(bodies, {}, TrainingProfile(), [], 0.9).verdict == "ok"
    assert scan_verdict(bodies[:2], {}, TrainingProfile(), [], 0.9).verdict == "fail"
    unsure = scan_verdict(bodies, {}, TrainingProfile(), [], 0.05)
    assert unsure.verdict == "check" and "level names uncertain" in unsure.reasons[0]
    gap = assess_map(column((3, 4, 6, 7, 1)), SPACING)
    assert gap.verdict == "check" and any("gap" in r for r in gap.reasons)


def test_a_result_in_doubt_calls_for_the_fallback_model_and_a_sure_one_does_not():
    labels = column()
    bodies = body_quality(labels, labels, probabilities_for(labels), SPACING)
    sure = scan_verdict(bodies, {}, TrainingProfile(), [], 0.9)
    assert fallback_triggers(sure, contrast_unlike=False) == []
    assert "intensities" in fallback_triggers(sure, contrast_unlike=True)[0]
    few = scan_verdict(bodies[:4], {}, TrainingProfile(), [], 0.9)  # a check, not a fail: still too few for a lumbar scan
    assert few.verdict == "check" and fallback_triggers(few, False) == ["4 vertebral bodies found"]
    unsure = probabilities_for(labels, sure=0.2)
    failed = scan_verdict(body_quality(labels, labels, unsure, SPACING), {}, TrainingProfile(), [], 0.9)
    assert failed.verdict == "fail" and fallback_triggers(failed, False) == ["its quality control failed it"]


def test_the_fallback_models_result_keeps_its_own_verdict_and_says_it_was_handed_over():
    labels = column()
    bodies = body_quality(labels, labels, probabilities_for(labels), SPACING)
    second = scan_verdict(bodies, {}, TrainingProfile(), [], 0.9)
    first = scan_verdict(bodies[:2], {}, TrainingProfile(), [], 0.9)
    handed = handed_over(second, first, fallback_triggers(first, False), "curves.onnx")
    assert second.verdict == "ok" and handed.verdict == "ok"  # judged by its own QC, as any result
    said = handed.reasons[0]  # yet never silently: the hand-over heads the reasons
    assert said.startswith("segmented by the fallback model curves.onnx") and "2 vertebral bodies" in said
    assert handed.statistics["first_model_reasons"] == first.reasons and handed.bodies == second.bodies
    assert handed_over(first, second, ["x"], "m").verdict == "fail"
    doubtful = scan_verdict(bodies, {}, TrainingProfile(), [], 0.05)
    assert handed_over(doubtful, first, ["x"], "m").verdict == "check"


def test_a_model_trained_with_contrast_curves_is_judged_against_the_contrasts_it_was_trained_for(phantom_data):
    """An inverted scan is unlike the training scans as they are, not unlike those scans under random contrast
    curves, which put any order of brightness on the tissues."""
    from saunet.datasets import list_cases, read_case
    from saunet.orientation import volume_layout

    cases = list_cases(phantom_data)
    plain, curved = training_profile(cases), training_profile(cases, contrast_curves=0.3)
    image, label = read_case(cases[0])
    inverted = scan_statistics(image.array.max() - image.array, image.spacing, volume_layout(image), label.array > 0)
    assert any("body contrast" in r for r in unfamiliar(inverted, plain))
    assert unfamiliar(inverted, curved) == []
    for name, (low, high) in plain.ranges.items():  # the scans as they are count too; spacings stay as they were
        widened = curved.ranges[name]
        assert widened[0] <= low and widened[1] >= high
        assert widened == (low, high) or name in INTENSITY
    assert training_profile(cases, contrast_curves=0.3) == curved  # drawn with a fixed seed


def test_a_saved_verdict_judged_against_another_profile_says_the_likeness_that_profile_gives():
    labels = column()
    bodies = body_quality(labels, labels, probabilities_for(labels), SPACING)
    statistics = {"slice_spacing_mm": 4.0, "in_plane_spacing_mm": 1.0, "field_cc_mm": 200.0, "body_intensity": 1.5,
                  "body_contrast": -0.5}
    narrow = TrainingProfile({k: (v, v) for k, v in {**statistics, "body_intensity": 0.3}.items()})
    saved = scan_verdict(bodies, statistics, narrow, [], 0.9).to_dict()
    assert saved["verdict"] == "check" and saved["reasons"][0].startswith(UNLIKE)
    assert rejudged(saved, THRESHOLDS).reasons == saved["reasons"]  # as it was said
    wide = TrainingProfile({k: (v - 2, v + 2) for k, v in statistics.items()})
    assert rejudged(saved, THRESHOLDS, wide).verdict == "ok"


def test_an_inverted_image_is_unlike_its_training_scans():
    from saunet.experiments.phantoms import make_phantom

    layout = Layout((0, 2, 1), (False, False, False))  # phantoms: slices, posterior, cranial
    phantoms = [make_phantom(seed=s, shape=(9, 96, 96)) for s in range(8)]
    profile = profile_of([scan_statistics(p.image, p.spacing, layout, p.label > 0) for p in phantoms])
    new = make_phantom(seed=9, shape=(9, 96, 96))  # within the family's range (seeds 10, 11 are brighter)
    assert unfamiliar(scan_statistics(new.image, new.spacing, layout, new.label > 0), profile) == []
    inverted = scan_statistics(new.image.max() - new.image, new.spacing, layout, new.label > 0)
    reasons = unfamiliar(inverted, profile)
    assert any("body contrast" in r for r in reasons), reasons
    thickest = max(p.spacing[0] for p in phantoms)
    thicker = scan_statistics(new.image, (2 * thickest, *new.spacing[1:]), layout, new.label > 0)
    assert unfamiliar(thicker, profile) == []  # twice the thickest trained slices: as tested on thinned scans
    thick = scan_statistics(new.image, (3 * thickest, *new.spacing[1:]), layout, new.label > 0)
    assert any("slice spacing" in r for r in unfamiliar(thick, profile))
    coarse = scan_statistics(new.image, (new.spacing[0], 2 * new.spacing[1], 2 * new.spacing[2]), layout, new.label > 0)
    assert any("in plane spacing" in r for r in unfamiliar(coarse, profile))


def test_a_contrast_between_two_training_sets_is_like_neither():
    """Bodies brighter than their surroundings in one set, darker in the other: a scan whose bodies match their
    surroundings lies inside the union's ranges, yet no set's; a scan like either set passes."""
    spacing = {"slice_spacing_mm": 2.0, "in_plane_spacing_mm": 1.0, "field_cc_mm": 300.0}
    bright = [{**spacing, "body_intensity": 0.2 + 0.02 * i, "body_contrast": 0.2 + 0.02 * i} for i in range(5)]
    dark = [{**spacing, "body_intensity": 0.4 + 0.02 * i, "body_contrast": -0.8 + 0.05 * i} for i in range(5)]
    profile = profile_of(bright + dark, ["t2"] * 5 + ["water-fat"] * 5)
    between = {**spacing, "body_intensity": 0.35, "body_contrast": -0.1}
    assert unfamiliar(between, profile_of(bright + dark)) == []  # the union alone misses it
    reasons = unfamiliar(between, profile)
    assert len(reasons) == 1 and "like no training data set" in reasons[0] and "water-fat" in reasons[0]
    assert unfamiliar(bright[2], profile) == [] and unfamiliar(dark[2], profile) == []
    mixed = {**dark[2], "body_intensity": 0.3}  # each value within some set's range, not both within one set's
    assert unfamiliar(mixed, profile_of(bright + dark)) == [] and len(unfamiliar(mixed, profile)) == 1
    assert TrainingProfile.from_dict(profile.to_dict()) == profile
    old = {k: list(v) for k, v in profile.ranges.items()}  # a checkpoint from before per-set ranges: the union
    assert TrainingProfile.from_dict(old).data_sets == {} and unfamiliar(between, TrainingProfile.from_dict(old)) == []


def test_a_body_cut_by_the_field_of_view_is_not_flagged_for_its_size():
    labels = column()
    labels[1:5, -4:, 8:32] = 2  # T12: only its lowest 4 voxels inside the field of view
    probabilities = probabilities_for(labels)
    probabilities[1][labels == 2] = 0.5  # the model less sure at the cut
    uncut = {b.name: b for b in body_quality(labels, labels, probabilities, SPACING)}
    assert any("volume" in f for f in uncut["T12"].flags) and any("confidence" in f for f in uncut["T12"].flags)
    cut = cut_by_field(labels, axis=1)
    assert cut == {2}
    bodies = {b.name: b for b in body_quality(labels, labels, probabilities, SPACING, cut=cut)}
    assert bodies["T12"].verdict == "ok" and bodies["T12"].cut_by_field
    assert "cut by the field of view" in bodies["T12"].remarks[0]
    assert not bodies["L1"].cut_by_field
    probabilities[1][labels == 2], probabilities[2][labels == 2] = 0.3, 0.6  # votes for L1: still a doubt
    voted = {b.name: b for b in body_quality(labels, labels, probabilities, SPACING, cut=cut)}
    assert any("votes" in f for f in voted["T12"].flags)


def member_logits(body_class: np.ndarray) -> np.ndarray:
    """Logits (background + 2 levels, ...) that class each voxel as ``body_class`` (0 background) by 5 over the rest."""
    logits = np.zeros((3, *body_class.shape), np.float32)
    for k in range(3):
        logits[k][body_class == k] = 5.0
    return logits


def test_ensemble_members_that_class_part_of_the_bodies_otherwise_disagree_on_that_share():
    agreed = np.zeros((4, 10, 10), np.uint8)
    agreed[1:3, 2:7, 2:4] = 1  # 20 voxels of level 1
    first = member_logits(agreed)
    other = agreed.copy()
    other[1:3, 2:4, 2:4] = 2  # 8 of them level 2 for the second member, by more than the first's margin
    second = member_logits(other)
    second[2][other == 2] = 8.0
    assert member_disagreements(*averaged_in_place(first.copy(), [first])) == (0.0, 0.0)
    # the mean calls those 8 level 2, the first member level 1: a name
    assert member_disagreements(*averaged_in_place(first, [second])) == (8 / 20, 8 / 20)
    smaller = agreed.copy()
    smaller[1:3, 2:7, 3] = 0  # the second member draws 10 of the 20 voxels as background: an outline, not a name
    sure = member_logits(agreed)
    sure[1][agreed == 1] = 8.0  # by more than the second member's margin: the mean keeps all 20 a body
    classes = averaged_in_place(sure, [member_logits(smaller)])
    assert member_disagreements(*classes) == (10 / 20, 0.0)
    nothing = member_logits(np.zeros_like(agreed))
    assert member_disagreements(*averaged_in_place(nothing, [nothing.copy()])) == (1.0, 1.0)  # no body: nothing to trust


def test_disagreeing_ensemble_members_make_a_scan_a_check():
    labels = column()
    bodies = body_quality(labels, labels, probabilities_for(labels), SPACING)
    assert scan_verdict(bodies, {}, TrainingProfile(), [], 0.9, disagreement=0.05).verdict == "ok"
    parted = scan_verdict(bodies, {}, TrainingProfile(), [], 0.9, disagreement=0.6)
    assert parted.verdict == "check" and "disagree on 60%" in parted.reasons[0]
    assert parted.statistics["member_disagreement"] == 0.6
    # refined bodies: the outlines are the refiner's to judge; the names alone are judged, and said to be
    named = scan_verdict(bodies, {}, TrainingProfile(), [], 0.9, disagreement=0.6, name_disagreement=0.05)
    assert named.verdict == "ok" and named.statistics["member_name_disagreement"] == 0.05
    misnamed = scan_verdict(bodies, {}, TrainingProfile(), [], 0.9, disagreement=0.6, name_disagreement=0.3)
    assert misnamed.verdict == "check" and "disagree on the names of 30%" in misnamed.reasons[0]
    for verdict in (parted, named, misnamed):  # judged again from the saved statistics, the same
        again = rejudged(verdict.to_dict(), THRESHOLDS)
        assert (again.verdict, again.reasons) == (verdict.verdict, verdict.reasons)


def test_a_saved_verdict_judged_again_says_the_same_with_its_thresholds_and_follows_other_ones():
    labels = column((2, 3, 5, 6, 7))  # L2 missing: a gap, which no threshold moves
    probabilities = probabilities_for(labels)
    probabilities[5][labels == 7], probabilities[6][labels == 7] = 0.3, 0.4  # L5: votes split with L4
    bodies = body_quality(labels, labels, probabilities, SPACING)
    profile = TrainingProfile({"body_intensity": (0.2, 0.8)})
    said = scan_verdict(bodies, {"body_intensity": 3.0}, profile, level_gaps(labels), 0.9, disagreement=0.3)
    assert said.verdict == "check" and len(said.reasons) == 5  # unlike, gap, disagreement, L5's confidence and votes
    again = rejudged(said.to_dict(), THRESHOLDS)
    assert (again.verdict, again.reasons, again.statistics) == (said.verdict, said.reasons, said.statistics)
    lenient = rejudged(said.to_dict(), replace(THRESHOLDS, member_disagreement=0.5, level_agreement=0.1,
                                                          body_confidence=0.0))
    assert lenient.reasons == said.reasons[:2]  # the image and the gap stay said
    strict = rejudged(said.to_dict(), replace(THRESHOLDS, min_bodies=6, body_confidence=0.99))
    assert strict.verdict == "check" and "only 5 vertebral bodies found" in strict.reasons[0]
    assert sum("low confidence" in r for r in strict.reasons) == 5


def test_a_body_whose_two_outlines_part_is_flagged_and_one_they_agree_on_is_not():
    labels = column()
    refined = labels.copy()
    refined[(labels == 5) & (np.arange(labels.shape[1])[None, :, None] < 116)] = 0  # the refiner keeps 10 of L3's 24 rows
    bodies = {b.name: b for b in body_quality(labels, labels, probabilities_for(labels), SPACING, refined=refined)}
    assert bodies["L1"].outline_agreement == 1.0 and bodies["L1"].verdict == "ok"
    assert bodies["L3"].outline_agreement < 0.8
    assert any("outline in doubt" in flag for flag in bodies["L3"].flags)
    unrefined = {b.name: b for b in body_quality(labels, labels, probabilities_for(labels), SPACING)}
    assert np.isnan(unrefined["L3"].outline_agreement) and unrefined["L3"].verdict == "ok"


def test_a_bodys_own_votes_flag_the_scan_only_where_no_second_outline_judges_it():
    labels = column()
    probabilities = probabilities_for(labels)
    probabilities[4][labels == 5], probabilities[3][labels == 5] = 0.45, 0.40  # L3: split between L3 and L2
    unrefined = body_quality(labels, labels, probabilities, SPACING)
    assert scan_verdict(unrefined, {}, TrainingProfile(), [], 0.9).verdict == "check"
    refined = body_quality(labels, labels, probabilities, SPACING, refined=labels)  # the two outlines agree
    quiet = scan_verdict(refined, {}, TrainingProfile(), [], 0.9)
    assert quiet.verdict == "ok" and [b.verdict for b in quiet.bodies].count("check") == 1
    assert any("votes" in flag for flag in quiet.bodies[2].flags)  # still said of the body
    parted = labels.copy()
    parted[labels == 5] = 0  # the refiner drops L3: its outline, not its votes, now raises the scan
    doubted = scan_verdict(body_quality(labels, labels, probabilities, SPACING, refined=parted), {}, TrainingProfile(),
                           [], 0.9)
    assert doubted.verdict == "check" and all(r.startswith("L3: outline in doubt") for r in doubted.reasons)
