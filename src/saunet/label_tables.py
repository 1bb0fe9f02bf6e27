"""Colour and name tables next to every label map, so viewers show labels by name: a 3D Slicer colour table
(``.ctbl``), an ITK-SNAP label description (``.itksnap.txt``) and a plain JSON name table (``.labels.json``)."""

from __future__ import annotations

import json
from pathlib import Path

from saunet.files import write_text
from saunet.imageio import case_name

# One distinct colour a level (T11 ... L5 and beyond), as Slicer's and ITK-SNAP's defaults are not by level.
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 190)]


def colour(value: int) -> tuple[int, int, int]:
    return PALETTE[(value - 1) % len(PALETTE)]


def slicer_table(names: dict[int, str]) -> str:
    """3D Slicer colour table: 'value name R G B A' per line, background 0 included."""
    lines = ["# saunet label colours (3D Slicer colour table)", "0 background 0 0 0 0"]
    lines += [f"{v} {name.replace(' ', '_')} {' '.join(map(str, colour(v)))} 255" for v, name in sorted(names.items())]
    return "\n".join(lines) + "\n"


def itksnap_table(names: dict[int, str]) -> str:
    """ITK-SNAP label description: 'IDX R G B A VIS MSH "LABEL"' per line."""
    lines = ["# ITK-SnAP Label Description File (written by saunet)",
             "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL",
             '    0     0    0    0     0   0   0  "Clear Label"']
    lines += [f'{v:5d} {r:5d} {g:4d} {b:4d}     1   1   1  "{name}"'
              for v, name in sorted(names.items()) for r, g, b in [colour(v)]]
    return "\n".join(lines) + "\n"


def table_paths(label_path: Path) -> dict[str, Path]:
    stem = case_name(label_path)
    return {kind: label_path.with_name(stem + ending)
            for kind, ending in (("slicer", ".ctbl"), ("itksnap", ".itksnap.txt"), ("json", ".labels.json"))}


def write_label_tables(names: dict[int, str], label_path: Path) -> dict[str, Path]:
    """Write the three tables beside ``label_path``; returns their paths by kind."""
    paths = table_paths(label_path)
    write_text(slicer_table(names), paths["slicer"])
    write_text(itksnap_table(names), paths["itksnap"])
    write_text(json.dumps({str(v): {"name": n, "rgb": list(colour(v))} for v, n in sorted(names.items())},
                          indent=1) + "\n", paths["json"])
    return paths
