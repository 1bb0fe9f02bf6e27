"""The HTML report: one self-contained page per scan (mid-sagittal overlay with level names, each body's
overlay, the measurements, the quality-control verdict and its reasons) and a cohort page (every scan sorted by
verdict, box plots per level). Images and styles are inline: the pages open without a network or a server."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from saunet.files import write_text
from saunet.label_tables import colour
from saunet.labels import LEVELS
from saunet.measurement import LevelMeasures
from saunet.postprocessing import present_values
from saunet.quality import Verdict, made_by_fallback

ORDER = {"fail": 0, "check": 1, "ok": 2}
BODY_MARGIN_MM = 12.0
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.5em}
table{border-collapse:collapse;font-size:.9em} th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}
th{background:#f3f3f3;cursor:pointer} td:first-child,th:first-child,td.text,th.text{text-align:left}
.verdict{display:inline-block;padding:.3em .8em;border-radius:.3em;font-weight:bold;color:#fff}
.ok{background:#2e7d32} .check{background:#ef6c00} .fail{background:#c62828}
.bodies{display:flex;flex-wrap:wrap;gap:.5em} figure{margin:0} figcaption{text-align:center;font-size:.85em}
code{font-size:.85em;background:#f6f6f6;padding:.1em .3em} img{max-width:100%;height:auto}
"""
# Click a column heading to sort a table by it.
SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, column) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var up = th.dataset.up !== '1';
    th.dataset.up = up ? '1' : '0';
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.key || a.cells[column].textContent;
      var y = b.cells[column].dataset.key || b.cells[column].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return up ? c : -c;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
document.body.dataset.ready = 'yes';
"""
SHOWN = (("name", "level"), ("volume_cm3", "volume (cm³)"), ("anterior_height_mm", "anterior height (mm)"),
         ("middle_height_mm", "middle height (mm)"), ("posterior_height_mm", "posterior height (mm)"),
         ("wedge_ratio", "wedge ratio"), ("biconcavity_ratio", "biconcavity ratio"),
         ("neighbour_height_loss_pct", "height loss vs neighbours (%)"), ("grade_suggestion", "grade (suggestion)"),
         ("disc_below_middle_mm", "disc below, middle (mm)"))


def png(figure) -> str:
    """A matplotlib figure as an inline <img>."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sagittal(image: np.ndarray, labels: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Canonical slice ``index`` for display: superior up, anterior left."""
    return image[index][::-1], labels[index][::-1]


def overlay(ax, picture: np.ndarray, levels: np.ndarray, aspect: float, names: bool) -> None:
    """Grey image with the levels in their viewer colours, and (``names``) each level's name at its centre."""
    low, high = np.percentile(picture, (1, 99.5))
    ax.imshow(picture, cmap="gray", vmin=low, vmax=high, aspect=aspect, interpolation="nearest")
    tint = np.zeros((*levels.shape, 4))
    for value in (int(v) for v in present_values(levels)):
        tint[levels == value] = (*(c / 255 for c in colour(value)), 0.45)
        if names:
            rows, cols = np.nonzero(levels == value)
            ax.text(cols.mean(), rows.mean(), LEVELS.get(value, str(value)), color="white", fontsize=9,
                    ha="center", va="center", weight="bold")
    ax.imshow(tint, aspect=aspect, interpolation="nearest")
    ax.set_axis_off()


def overview_figure(image: np.ndarray, levels: np.ndarray, spacing: tuple[float, float, float]) -> str:
    """The slice with the most body voxels, levels named."""
    plt = _pyplot()
    index = int(np.argmax((levels > 0).sum((1, 2)))) if levels.any() else image.shape[0] // 2
    picture, shown = sagittal(image, levels, index)
    figure, ax = plt.subplots(figsize=(5, 5 * picture.shape[0] * spacing[1] / (picture.shape[1] * spacing[2])))
    overlay(ax, picture, shown, spacing[1] / spacing[2], names=True)
    return png(figure)


def body_figures(image: np.ndarray, levels: np.ndarray, spacing: tuple[float, float, float]) -> list[tuple[str, str]]:
    """Per level: its own most central sagittal slice, cropped around it, as (name, <img>)."""
    plt = _pyplot()
    out = []
    for value in (int(v) for v in present_values(levels)):
        mask = levels == value
        index = int(np.argmax(mask.sum((1, 2))))
        picture, shown = sagittal(image, np.where(mask, levels, 0), index)
        rows, cols = np.nonzero(shown)
        pad = [int(BODY_MARGIN_MM / s) for s in spacing[1:]]
        box = (slice(max(rows.min() - pad[0], 0), rows.max() + pad[0] + 1),
               slice(max(cols.min() - pad[1], 0), cols.max() + pad[1] + 1))
        figure, ax = plt.subplots(figsize=(2.2, 2.2))
        overlay(ax, picture[box], shown[box], spacing[1] / spacing[2], names=False)
        out.append((LEVELS.get(value, str(value)), png(figure)))
    return out


def cell(value) -> str:
    if isinstance(value, float):
        return "" if not np.isfinite(value) else f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return html.escape(str(value))


def measurement_table(rows: list[LevelMeasures]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in SHOWN)
    body = "".join("<tr>" + "".join(f"<td>{cell(getattr(r, key))}</td>" for key, _ in SHOWN) + "</tr>" for r in rows)
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def quality_table(verdict: Verdict) -> str:
    """Each body's QC signals; its volume is the level network's outline's, which QC judges (the measurements are of
    the written, refined outline), and the outline agreement that outline's with the refiner's (blank: not refined)."""
    head = ("<tr><th>level</th><th>confidence</th><th>level agreement</th><th>outline agreement</th>"
            "<th>network's volume (cm³)</th><th>verdict</th><th class='text'>why</th></tr>")
    body = "".join(f"<tr><td>{html.escape(b.name)}</td><td>{cell(b.confidence)}</td><td>{cell(b.level_agreement)}</td>"
                   f"<td>{cell(b.outline_agreement)}</td><td>{cell(b.volume_cm3)}</td><td>{b.verdict}</td>"
                   f"<td class='text'>{html.escape('; '.join(b.remarks))}</td></tr>" for b in verdict.bodies)
    note = ("<p>Quality control judges the level network's own outline of each body; the measurements above are of "
            "the outline written, redrawn by the outline refiner where one ran.</p>")
    return f'<table class="sortable"><thead>{head}</thead><tbody>{body}</tbody></table>{note}'


def verdict_block(verdict: Verdict) -> str:
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in verdict.reasons) or "<li>nothing unusual noticed</li>"
    return (f'<p>Quality control: <span class="verdict {verdict.verdict}" id="verdict">{verdict.verdict}</span></p>'
            f"<ul>{reasons}</ul>")


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{body}<script>{SCRIPT}</script></body></html>\n")


@dataclass
class Entry:
    name: str
    verdict: Verdict
    rows: list[LevelMeasures] | None


@dataclass
class Report:
    """Pages written as scans are added; :meth:`finish` writes the cohort page."""

    folder: Path
    command: str
    entries: list[Entry] = field(default_factory=list)

    def add(self, name: str, volume, result, rows: list[LevelMeasures] | None, verdict: Verdict) -> Path:
        image = result.layout.to_canonical(volume.array).astype(np.float32)
        levels = result.layout.to_canonical(result.labels)
        spacing = result.layout.spacing(volume.spacing)
        bodies = "".join(f"<figure>{img}<figcaption>{html.escape(n)}</figcaption></figure>"
                         for n, img in body_figures(image, levels, spacing))
        body = (f"<h1>{html.escape(name)}</h1><p>Input <code>{html.escape(str(volume.path))}</code></p>"
                f"{verdict_block(verdict)}<h2>Mid-sagittal view</h2>{overview_figure(image, levels, spacing)}"
                f'<h2>Each body</h2><div class="bodies">{bodies}</div>'
                + (f"<h2>Measurements</h2>{measurement_table(rows)}<p>Grades are suggestions in the style of Genant's "
                   "semi-quantitative method, for a reader to confirm; definitions in docs/measurements.md.</p>"
                   if rows else "")
                + f"<h2>Quality control per body</h2>{quality_table(verdict)}"
                f"<p>Command: <code>{html.escape(self.command)}</code></p>")
        path = self.folder / f"{name}.html"
        write_text(page(f"saunet: {name}", body), path)
        self.entries.append(Entry(name, verdict, rows))
        return path

    def finish(self) -> Path:
        """The cohort page (index.html) for several scans; the one scan's page for one."""
        if len(self.entries) == 1:
            return self.folder / f"{self.entries[0].name}.html"
        entries = sorted(self.entries, key=lambda e: (ORDER[e.verdict.verdict], e.name))
        rows = "".join(
            f'<tr><td><a href="{html.escape(e.name)}.html">{html.escape(e.name)}</a></td>'
            f'<td data-key="{ORDER[e.verdict.verdict]}"><span class="verdict {e.verdict.verdict}">{e.verdict.verdict}'
            f"</span></td><td>{len(e.verdict.bodies)}</td>"
            f"<td class='text'>{html.escape('; '.join(e.verdict.reasons))}</td></tr>"
            for e in entries)
        table = ('<table class="sortable" id="cohort"><thead><tr><th>scan</th><th>verdict</th><th>bodies</th>'
                 f"<th class='text'>reasons</th></tr></thead><tbody>{rows}</tbody></table>")
        body = (f"<h1>saunet cohort report</h1><p>{html.escape(cohort_summary(entries))}</p>{table}"
                f"{cohort_figure(self.entries)}<p>Command: <code>{html.escape(self.command)}</code></p>")
        return write_text(page("saunet cohort report", body), self.folder / "index.html")


def cohort_summary(entries: list[Entry]) -> str:
    """How many scans got each verdict, and how many the fallback model segmented (whatever their verdict)."""
    counts = ", ".join(f"{sum(e.verdict.verdict == v for e in entries)} {v}" for v in ORDER)
    handed = sum(made_by_fallback(e.verdict.statistics) for e in entries)
    return f"{len(entries)} scans: {counts}" + (f"; {handed} segmented by the fallback model." if handed else ".")


def cohort_figure(entries: list[Entry]) -> str:
    """Box plots per level of the volume and the three heights over the cohort's scans."""
    measured = [r for e in entries for r in (e.rows or [])]
    if not measured:
        return ""
    plt = _pyplot()
    levels = sorted({r.level for r in measured})
    figure, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (key, label) in zip(axes, SHOWN[1:5]):
        data = [[getattr(r, key) for r in measured if r.level == v and np.isfinite(getattr(r, key))] for v in levels]
        ax.boxplot(data, tick_labels=[LEVELS.get(v, str(v)) for v in levels])
        ax.set_title(label, fontsize=10)
    figure.tight_layout()
    return f"<h2>Per level over the cohort</h2>{png(figure)}"
