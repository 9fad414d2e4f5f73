"""Tests of glueslim.report.charts: the SVG chart library: axes and ticks, series, escaping."""

from __future__ import annotations

from glueslim.report import charts


def test_log_axis_ticks():
    assert charts._log_ticks(1.0, 1000.0) == [1.0, 10.0, 100.0, 1000.0]
    assert charts._log_ticks(30.0, 600.0) == [50.0, 100.0, 200.0, 500.0]
    ticks = charts._log_ticks(145.0, 213.0)  # less than a decade: a linear grid inside the range
    assert len(ticks) >= 2 and all(145 <= t <= 213 for t in ticks)
    svg = charts.svg_chart({"m": [(32, 1.0), (512, 100.0)], "m floor": [(32, 0.1), (512, 10.0)]}, "t",
                           x_label="len", x_log=True, y_log=True, x_ticks=[32, 128, 512], dashed=["m floor"])
    assert ">128</text>" in svg and 'stroke-dasharray="4 3"' in svg
    assert svg.count("<circle") == 2  # dashed reference lines have no dots


def test_svg_chart_one_polyline_per_series():
    svg = charts.svg_line_chart(
        {"train <loss>": [(1, 0.5), (2, 0.3), (3, 0.2)], "val loss": [(1, 0.6), (2, float("nan")), (3, 0.4)],
         "empty": []},
        "title & <b>")
    assert svg.count("<polyline") == 3
    assert "<b>" not in svg and "title &amp; &lt;b&gt;" in svg and "train &lt;loss&gt;" in svg
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    # a single point and no points at all still render
    assert charts.svg_line_chart({"a": [(1, 1.0)]}, "one").count("<polyline") == 1
    assert "no data" in charts.svg_line_chart({"a": []}, "none")
