"""Tests of glueslim.report.render: the page's tables, charts and ablations, escaping, self-containedness,
standalone figures."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from glueslim.report.build import build_leaderboard, config_sha256
from glueslim.report.render import FIGURES, figures, heat_color, render_html
from report_fixtures import CONFIG, EVIL, STUDENT, TASKS, TEACHER, _write, build, make_results, results, row_of


def test_pareto_in_document_and_chart(results):
    doc = build(results)
    assert doc["pareto"] == {"latency": "batch_1", "score": "glue_score", "frontier": [STUDENT, TEACHER]}
    assert row_of(doc, STUDENT)["pareto_optimal"] is True
    html = render_html(doc)
    m = re.search(r'<svg class="chart large"[^>]*aria-label="GLUE score against latency[^"]*".*?</svg>', html, re.S)
    assert m, "no Pareto chart"
    svg = m.group(0)
    assert svg.count('class="point"') == 2 and svg.count('data-frontier="1"') == 2
    assert 'class="frontier"' in svg
    # marker area proportional to parameters: the teacher has 2x the student's
    r = {name: float(rad) for name, rad in re.findall(r'data-model="([^"]+)"[^>]* r="([0-9.]+)"', svg)}
    assert (r[TEACHER] / r[STUDENT]) ** 2 == pytest.approx(2.0, rel=0.02)


def test_heat_map_cells(results):
    html = render_html(build(results))
    table = re.search(r'<table class="heat sortable" id="heatmap-table">.*?</table>', html, re.S).group(0)
    assert table.count('class="hv"') == 2 * (len(TASKS) + 1)
    bg, _ = heat_color(0.85 / 0.90 * 100)
    assert f"background:{bg}" in table and "94.4" in table  # student sst2: 85/90
    assert heat_color(100.0) == ("#ffffff", "#1b1f24")
    assert heat_color(None)[0] == "#eef0f2"
    assert heat_color(50.0) == heat_color(80.0)  # saturated 20 points away
    assert heat_color(90.0)[0] != heat_color(110.0)[0]


def test_speed_section_tables_and_charts(results):
    html = render_html(build(results))
    for table_id in ("summary-table", "latency-length-table", "latency-batch-table", "compute-table",
                     "leaderboard-table", "heatmap-table"):
        assert f'id="{table_id}"' in html
    assert "512 tokens (ms)" in html and "batch 32 (ms)" in html
    assert "Latency against sequence length (batch 1)" in html and "Latency against batch size (128 tokens)" in html
    assert "3 warm-up + 20 timed runs" in html and "2 threads" in html  # every timing states how
    assert "floor 14.53" in html  # teacher batch 1 x 32 tokens: 2 * 22.7e6 * 32 MACs / 1e11 FLOP/s = 14.53 ms
    assert "100.0 GFLOP/s" in html


def test_ablation_tables(results):
    abl = results / "ablations"
    _write(abl / "b_temperature.json", {
        "title": "KD temperature", "caption": "distil on " + EVIL, "order": 2,
        "columns": ["temperature", {"key": "glue", "label": "GLUE", "format": "score"},
                    {"key": "params", "label": "Params", "format": "params"}],
        "rows": [[1.0, 0.801, 11_350_000], {"temperature": 2.0, "glue": 0.815, "params": None}]})
    _write(abl / "a_layers.json", {"title": EVIL, "columns": ["layers", "pct"], "rows": [[EVIL, 93.25]], "order": 1})
    doc = build(results)
    assert [a["id"] for a in doc["ablations"]] == ["a_layers", "b_temperature"]
    t = doc["ablations"][1]
    assert [c["format"] for c in t["columns"]] == ["text", "score", "params"]
    assert t["rows"][1] == [2.0, 0.815, None]
    html = render_html(doc)
    assert "80.1" in html and "81.5" in html and "11.3M" in html and "93.25" in html and "KD temperature" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in html
    assert html.index("a_layers.json") < html.index("b_temperature.json")


def test_standalone_figures_are_valid_svg(results):
    import xml.etree.ElementTree as ET

    figs = figures(build(results))
    assert sorted(figs) == sorted(FIGURES)
    for name, svg in figs.items():
        root = ET.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg", name
        assert root.find("{http://www.w3.org/2000/svg}style") is not None


@pytest.fixture
def evil_html(tmp_path: Path) -> tuple[dict, str]:
    results = make_results(tmp_path, student_name=EVIL.replace("/", "_"), method=EVIL)
    doc = build_leaderboard(results, [TEACHER, EVIL.replace("/", "_")], TEACHER, TASKS, CONFIG)
    return doc, render_html(doc)


def test_html_escapes_every_string(evil_html):
    doc, html = evil_html
    assert "<script>alert" not in html
    assert "alert(1)" in html  # it is shown, escaped
    assert "&lt;script&gt;alert(1)" in html
    assert "<b>9000</b>" not in html  # device strings too
    # the embedded JSON cannot close its <script> block
    m = re.search(r'<script type="application/json" id="leaderboard-data">(.*?)</script>', html, re.S)
    assert m and "<" not in m.group(1)
    assert json.loads(m.group(1))["rows"][0]["model"] == doc["rows"][0]["model"]
    # only our two script blocks
    assert html.count("<script") == 2


def test_html_is_self_contained(evil_html):
    _, html = evil_html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<link" not in html.lower()
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.I)
    assert "@import" not in html and "url(" not in html
    assert "dev-set" in html and "test server is not used" in html


def test_html_has_table_curves_and_provenance(results):
    html = render_html(build(results))
    assert 'class="teacher"' in html and 'class="badge">teacher<' in html
    assert html.count('<svg class="chart"') == len(TASKS) * 2
    assert config_sha256(CONFIG) in html
    assert "Fake CPU" in html and "avx2 fma" in html
    assert "aaaaaaaaaaaaaaaa" in html  # data sha256 (abbreviated)
    assert "150.5" in html  # finetune wall seconds
    assert "90.0" in html and "81.5" in html  # scores ×100 with one decimal
    assert "2.50×" in html  # speed-up


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit non-interlaced PNG, decoded with zlib alone."""
    import struct
    import zlib

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(v for i, v in enumerate(line) if i % 4 != 3))
        prev = line
    return width, height, rows


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Debian's chromium, headless, offline, with a throw-away profile (the documented command)."""
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
        capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian: apt-get install chromium)")
def test_html_renders_in_headless_chromium(results, tmp_path):
    _write(results / "ablations" / "t.json", {"title": "An ablation", "columns": ["a", "b"], "rows": [["x", 1]]})
    html = tmp_path / "leaderboard.html"
    html.write_text(render_html(build(results)), encoding="utf-8")
    # the page's script ran to its end without an error, and every section is in the rendered DOM
    dom = chromium(tmp_path, "--dump-dom", html.as_uri()).stdout
    assert 'data-ready="1"' in dom
    for anchor in ("leaderboard", "pareto", "heatmap", "speed", "compute", "curves", "ablations", "provenance"):
        assert f'id="{anchor}"' in dom
    assert 'tabindex="0"' in dom  # sortable headers were wired up
    png = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1400,2400", html.as_uri())
    width, height, rows = read_png(png)
    assert (width, height) == (1400, 2400)
    pixels = {row[i:i + 3] for row in rows[::4] for i in range(0, len(row), 12)}
    assert len(pixels) > 100  # text, tables and charts, not a blank or error page
    white = sum(row[i:i + 3] == b"\xff\xff\xff" for row in rows[::4] for i in range(0, len(row), 12))
    assert white < 0.97 * len(rows[::4]) * (width // 4)
    assert bytes.fromhex("fff4d6") in pixels  # the teacher's highlighted row
    assert any(abs(p[0] - 0x1f) < 40 and abs(p[1] - 0x77) < 40 and p[2] > 0x90 for p in pixels)  # chart blue
