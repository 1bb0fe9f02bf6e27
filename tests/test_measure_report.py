"""saunet measure, segment --measure --report, and the HTML report in a real headless browser."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import write_image
from saunet.cli import main
from saunet.measurement import COLUMNS
from test_measurement import phantom

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def level_map_file(path, spacing=(3.0, 0.8, 0.8)):
    bodies = [(3, 36.0, 26, 26, None), (4, 0.0, 8, 26, None), (5, -36.0, 27, 27, None)]
    labels, direction, origin = phantom(bodies, spacing, "PSR", field_mm=150.0)
    return write_image(labels, path, spacing=tuple(reversed(spacing)), origin=origin,
                       direction=tuple(direction.ravel()))


def test_measure_writes_one_row_per_level_with_units(tmp_path, capsys):
    labels = level_map_file(tmp_path / "case.nii.gz")
    assert main(["measure", str(labels)]) == 0
    with open(tmp_path / "case.measures.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["L1", "L2", "L3"]
    assert list(rows[0]) == COLUMNS and "volume_cm3" in COLUMNS and "posterior_height_mm" in COLUMNS
    assert rows[1]["grade_suggestion"].startswith("severe")  # L2 wedged to about half its posterior height
    record = json.loads((tmp_path / "case.results.json").read_text(encoding="utf-8"))
    assert record["quality"]["verdict"] == "check"  # 3 bodies: fewer than a lumbar scan shows
    assert [m["name"] for m in record["measurements"]] == ["L1", "L2", "L3"]
    assert "L2" in capsys.readouterr().out


def test_measure_refuses_bad_input_in_one_line(tmp_path, capsys):
    empty = write_image(np.zeros((4, 8, 8), np.uint8), tmp_path / "empty.nii.gz")
    body_map = np.zeros((4, 30, 8), np.uint8)
    body_map[:, 2:8], body_map[:, 14:20] = 1, 1
    binary = write_image(body_map, tmp_path / "binary.nii.gz")
    labels = level_map_file(tmp_path / "case.nii.gz")
    other = write_image(np.zeros((4, 8, 8), np.float32), tmp_path / "image.nii.gz")
    for argv, problem in ((["measure", str(empty)], "empty"), (["measure", str(binary)], "body map"),
                          (["measure", str(labels), "--image", str(other)], "does not match")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert problem in err and err.count("\n") == 1, err
    assert not (tmp_path / "empty.measures.csv").exists() and not (tmp_path / "binary.results.json").exists()


@pytest.fixture(scope="module")
def report(tiny_level_checkpoint, phantom_data, tmp_path_factory):
    """segment --levels --measure --report over two phantoms, one of them intensity-inverted."""
    from saunet.imageio import read_volume, write_like

    folder = tmp_path_factory.mktemp("report-run")
    scans = sorted((phantom_data / "imagesTr").glob("*.nii.gz"))[:2]
    inverted = read_volume(scans[1])
    write_like(inverted.array.max() - inverted.array, inverted, folder / "inverted_0000.nii.gz")
    argv = ["segment", str(scans[0]), str(folder / "inverted_0000.nii.gz"), "-o", str(folder / "out"),
            "--model", str(tiny_level_checkpoint), "--levels", "--measure", "--report", str(folder / "report")]
    result = subprocess.run([sys.executable, "-m", "saunet.cli", *argv], capture_output=True, text=True,
                            encoding="utf-8", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder, result


def test_segment_writes_measurements_verdict_and_pages(report):
    folder, result = report
    record = json.loads((folder / "out" / "inverted.results.json").read_text(encoding="utf-8"))
    assert record["quality"]["verdict"] in ("check", "fail")
    assert f"saunet: {record['quality']['verdict']}: " in result.stderr  # said on stderr, exit 0
    assert "measurements" in record and (folder / "out" / "inverted.measures.csv").exists()
    pages = sorted(p.name for p in (folder / "report").iterdir())
    assert pages == ["index.html", "inverted.html", "phantom_000.html"]
    text = (folder / "report" / "inverted.html").read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text  # self-contained
    assert text.count("data:image/png;base64,") >= 2


def browser(page, *extra):
    """Run headless Chromium on a page: (DOM after scripts, console messages logged)."""
    profile = page.parent / ".chromium-profile"
    result = subprocess.run([CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
                             "--v=0", *extra, page.as_uri()], capture_output=True, text=True, encoding="utf-8",
                            errors="replace", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.parametrize("name", ["inverted.html", "index.html"])
def test_report_renders_in_headless_chromium(report, name):
    folder, _ = report
    page = folder / "report" / name
    dom, console = browser(page, "--dump-dom")
    assert console == []  # no errors, no messages
    assert 'data-ready="yes"' in dom  # the page's script ran to its end
    assert "T11" in dom and "verdict" in dom
    record = json.loads((folder / "out" / "inverted.results.json").read_text(encoding="utf-8"))
    assert f'class="verdict {record["quality"]["verdict"]}"' in dom
    shot = folder / f"{name}.png"
    browser(page, f"--screenshot={shot}", "--window-size=1000,1400")
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.std() > 10  # something drawn, not a blank page


def test_the_cohort_summary_counts_the_scans_the_fallback_segmented_whatever_their_verdict():
    from saunet.quality import TrainingProfile, Verdict, handed_over, scan_verdict
    from saunet.report import Entry, cohort_summary

    empty = scan_verdict([], {}, TrainingProfile(), [], None)
    handed = handed_over(Verdict("ok", [], [], {}), empty, ["its quality control failed it"], "curves.onnx")
    entries = [Entry("a", empty, None), Entry("b", handed, None), Entry("c", empty, None)]
    assert handed.verdict == "ok"
    assert cohort_summary(entries) == "3 scans: 2 fail, 0 check, 1 ok; 1 segmented by the fallback model."
    assert cohort_summary(entries[::2]) == "2 scans: 2 fail, 0 check, 0 ok."


def test_the_quality_table_shows_each_bodys_outline_agreement_where_the_refiner_ran():
    from saunet.quality import BodyQuality, TrainingProfile, scan_verdict
    from saunet.report import quality_table

    refined = BodyQuality(3, "L1", 0.9, 0.95, 30.0, [], outline_agreement=0.871)
    unrefined = BodyQuality(4, "L2", 0.9, 0.95, 31.0, [])
    table = quality_table(scan_verdict([refined, unrefined], {}, TrainingProfile(), [], None))
    rows = table.split("<tr>")[2:]
    assert "<td>0.871</td><td>30</td>" in rows[0]  # the agreement, then the network's volume
    assert "<td>0.95</td><td></td><td>31</td>" in rows[1]  # not refined: no agreement to show
    assert "outline agreement" in table and "network's volume" in table
