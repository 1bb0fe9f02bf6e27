"""The per-scan result record beside each label map: ``<case>.results.json`` (quality control, and the
measurements when asked for) and ``<case>.measures.csv`` (one row per level, units in the column names)."""

from __future__ import annotations

from pathlib import Path

from saunet.files import write_csv, write_json
from saunet.imageio import Volume, case_name
from saunet.measurement import COLUMNS, LevelMeasures, measure_levels
from saunet.orientation import Layout, world_direction
from saunet.quality import Verdict


def record_paths(label_path: Path) -> dict[str, Path]:
    """Where the record of the label map at ``label_path`` goes."""
    stem = case_name(label_path)
    return {"json": label_path.with_name(stem + ".results.json"), "csv": label_path.with_name(stem + ".measures.csv")}


def measure_volume(levels, volume: Volume, layout: Layout) -> list[LevelMeasures]:
    """Measurements of the level map ``levels`` on ``volume``'s grid, in world millimetres."""
    return measure_levels(levels, volume.spacing, world_direction(volume, layout), volume.origin)


def write_record(label_path: Path, about: dict, verdict: Verdict, rows: list[LevelMeasures] | None) -> dict[str, Path]:
    """Write the JSON record (``about``: input, model, command; the QC verdict; the measurements) and, with
    measurements, the CSV; returns the paths written."""
    paths = record_paths(label_path)
    record = {**about, "labels": str(label_path), "quality": verdict.to_dict()}
    written = {"json": paths["json"]}
    if rows is not None:
        record["measurements"] = [row.to_dict() for row in rows]
        write_csv([row.to_dict() for row in rows], paths["csv"], COLUMNS)
        written["csv"] = paths["csv"]
    write_json(record, paths["json"])
    return written
