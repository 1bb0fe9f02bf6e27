"""DICOM Segmentation objects (highdicom) for label maps of DICOM series, one segment per label.

A SEG references its source series (same study, frame of reference and instance UIDs), so PACS and viewers
(OHIF, 3D Slicer) place it on the images it was made from. Each segment carries its name and a standard
SNOMED CT code: the level's vertebra (CID 7603) for level maps, "Vertebra" for the one vertebral-body label
(SNOMED CT has no vertebral-body concept in DICOM's context groups; the segment's label and description say
that the body alone was segmented).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from saunet.errors import InputError
from saunet.files import atomic_path

VERSION = "0.1.0"


def series_files(folder: Path) -> list[str]:
    """The files of the folder's one DICOM series, in the order SimpleITK stacks them (the label map's axis 0)."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    return list(reader.GetGDCMSeriesFileNames(str(folder), reader.GetGDCMSeriesIDs(str(folder))[0]))


def numbered(names: dict[int, str]) -> dict[int, str]:
    """Segment names for every number 1..max (DICOM numbers segments without gaps): a level map of L1-L5
    (values 3-7) gets T11 and T12 as segments too, which stay empty."""
    from saunet.labels import LEVELS

    return {v: names.get(v, LEVELS.get(v, f"label {v}")) for v in range(1, max(names) + 1)}


def seg_path(label_path: Path) -> Path:
    """Where the SEG of a label map goes: '<case>.seg.dcm' beside it."""
    from saunet.imageio import image_suffix

    return label_path.with_name(label_path.name[: len(label_path.name) - len(image_suffix(label_path))] + ".seg.dcm")


def property_type(name: str):
    """The SNOMED CT code of a label name: 'L3' -> L3 vertebra; anything else -> Vertebra."""
    from pydicom.sr.codedict import codes

    return getattr(codes.SCT, f"{name}Vertebra", codes.SCT.Vertebra)


def segment_descriptions(names: dict[int, str]) -> list:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(name="saunet SAU-Net", version=VERSION,
                                                   family=codes.cid7162.ArtificialIntelligence)
    return [hd.seg.SegmentDescription(
        segment_number=value, segment_label=name,
        segmented_property_category=codes.cid7150.AnatomicalStructure,
        segmented_property_type=property_type(name),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
        anatomic_regions=[codes.SCT.Spine]) for value, name in sorted(names.items())]


def write_dicom_seg(labels: np.ndarray, series_folder: Path, names: dict[int, str], path: Path) -> Path:
    """Write ``labels`` (the label map of the series in ``series_folder``, on its grid) as a DICOM SEG.

    ``names`` maps every label value to its name; the values must be 1..N (DICOM numbers segments so).
    """
    import highdicom as hd
    import pydicom

    if sorted(names) != list(range(1, len(names) + 1)):
        raise ValueError(f"segment numbers must run 1..N, got {sorted(names)}")
    sources = [pydicom.dcmread(f) for f in series_files(series_folder)]
    if labels.shape != (len(sources), int(sources[0].Rows), int(sources[0].Columns)):
        raise ValueError(f"label map {labels.shape} does not match the series ({len(sources)} frames)")
    try:
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=labels.astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=segment_descriptions(names),
            series_instance_uid=hd.UID(), series_number=int(getattr(sources[0], "SeriesNumber", 0) or 0) + 1000,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="saunet",
            manufacturer_model_name="SAU-Net", software_versions=VERSION, device_serial_number="none",
            series_description="saunet vertebral bodies", omit_empty_frames=False)
    except (ValueError, AttributeError, TypeError) as err:
        problem = str(err).splitlines()[0][:160]
        raise InputError(series_folder, f"cannot reference this series in a DICOM SEG ({problem})") from None
    with atomic_path(path, suffix=".dcm") as tmp:
        seg.save_as(tmp)
    return Path(path)


def read_dicom_seg(path: Path, series_folder: Path) -> np.ndarray:
    """A SEG back as a label map on its source series' grid (frames in the series' stacking order)."""
    import highdicom as hd
    import pydicom

    seg = hd.seg.segread(path)
    sources = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in series_files(series_folder)]
    return seg.get_pixels_by_source_instance(sources, combine_segments=True, relabel=False).astype(np.uint8)
