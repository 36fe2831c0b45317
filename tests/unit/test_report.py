"""Report writers: summary.json, report.html (parsed), junit.xml, terminal table, re-render."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import orjson
from rich.console import Console

from generator.check import CheckContext, EvidenceBuilder, Observed, evaluate
from generator.check.registry import run_checks
from generator.cli import main
from generator.report import build_summary, print_summary, render_html, render_junit, write_reports
from generator.report.summary import ERROR_EDGES, histogram
from generator.scenario.model import Threshold

from .expect_support import HOUR, MIN, delivered, event, identify, order
from .expect_support import scenario as make_scenario
from .test_check import entry, life, send


class _Audit(HTMLParser):
    """Collects tags, attributes and text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(k, v or "") for k, v in attrs]

    def handle_data(self, data):
        self.text.append(data)


def _summary(*, violation: bool = True):
    sc = make_scenario()
    ident = identify(0, "u1", "anon0", id="I0")
    c = event(
        "Added to Cart",
        0,
        user="u1",
        id="C0",
        props={"cart_total": 30, "product_id": "p1", "product_url": "https://shop.example.com/p/1"},
    )
    o = order(20 * MIN, user="u1", id="O0")
    arrival = 20 * MIN + (74 * MIN if violation else 0)
    builder = EvidenceBuilder(sc)
    builder.add_life(life(0, [ident, c, o], user="u1"))
    for d in (delivered(ident), delivered(c), delivered(o, arrival, faults=("latency",))):
        builder.add_delivery(d)
    evidence = builder.finish()
    obs = [entry("u1", "C0", 0), send("u1", "C0", HOUR)] if violation else [entry("u1", "C0", 0)]
    observed = Observed.build(obs, source="export", complete_events=True, comparable_times=True)
    result = run_checks(CheckContext(evidence=evidence, observed=observed, scenario_path="s.yaml", seed=5))
    result.thresholds = evaluate(
        [Threshold.model_validate("suppression_violations[cart_recovery] == 0")], result.metrics
    )
    run = {
        "run_id": "run-x",
        "scenario": {"name": "unit", "path": "s.yaml", "sha256": "ab"},
        "seed": 5,
        "shoppers": 1,
        "clock": "virtual",
        "target": None,
        "api": "pipelines",
        "observer": "export",
    }
    return build_summary(
        run=run, result=result, evidence=evidence, ledger={"planned": 3}, timings={"check": 0.01}
    )


def test_html_is_self_contained_and_shows_the_evidence():
    page = render_html(_summary())
    audit = _Audit()
    audit.feed(page)
    assert "svg" in audit.tags and "rect" in audit.tags
    assert not {"script", "link", "img", "iframe", "object"} & set(audit.tags)
    assert all("http://" not in v and "https://" not in v for _, v in audit.attrs), (
        "external URL in an attribute"
    )
    style = page.split("<style>", 1)[1].split("</style>", 1)[0]
    assert "url(" not in style and "@import" not in style
    text = " ".join(audit.text)
    assert "late Order Completed (arrived 74 min after purchase; delay 60 min)" in text
    assert "reproduce with: shopsim replay s.yaml --seed 5 --shopper 0" in text
    assert "suppression_violations[cart_recovery] == 0" in text
    assert "FAIL" in text
    import re

    charts = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(charts) >= 3
    for chart in charts:
        ET.fromstring(chart)  # each inline chart is well-formed XML


def test_html_escapes_values():
    summary = _summary()
    summary["scenario"]["name"] = "<script>alert(1)</script>"
    page = render_html(summary)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_junit_has_a_case_per_threshold_and_check_with_attributed_failure_text():
    summary = _summary()
    root = ET.fromstring(render_junit(summary))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    (case,) = suites["shopsim.thresholds"].iter("testcase")
    failure = case.find("failure")
    assert failure is not None and "late Order Completed" in (failure.text or "")
    assert "--shopper 0" in (failure.text or "")
    checks = [c.get("name") for c in suites["shopsim.checks"].iter("testcase")]
    assert "suppression_violations" in checks and "tracking_plan" in checks
    assert root.get("failures") == "1"


def test_passing_run_renders_pass():
    summary = _summary(violation=False)
    assert summary["verdict"] == "pass"
    root = ET.fromstring(render_junit(summary))
    assert root.get("failures") == "0"
    assert "PASS" in render_html(summary)


def test_terminal_summary_keeps_scoped_names_and_verdict():
    console = Console(record=True, width=140, force_terminal=False)
    print_summary(_summary(), console=console, run_dir="results/run-x")
    out = console.export_text()
    assert "suppression_violations[cart_recovery] == 0" in out
    assert "late Order Completed" in out and "reproduce with:" in out
    assert "FAIL seed 5" in out


def test_terminal_never_breaks_the_report_path():
    console = Console(record=True, width=40, force_terminal=False)
    run_dir = "results/run-post_purchase_cross_sell-s11-20261129T161959Z"
    print_summary(_summary(), console=console, run_dir=run_dir)
    assert f"report: {run_dir}/report.html" in console.export_text()


def test_histogram_bins():
    h = histogram([-7_200_000, -500, 0, 999, 1000, 30_000, 10**9], ERROR_EDGES, "≥6h")
    assert h["labels"][-1] == "≥6h"
    assert sum(h["counts"]) == 7
    assert h["counts"][0] == 1  # < -1h
    assert h["counts"][h["labels"].index("±1s")] == 4
    assert h["counts"][-1] == 1


def test_summary_is_json_and_report_command_rerenders(tmp_path: Path):
    summary = _summary()
    paths = write_reports(tmp_path, summary)
    data = orjson.loads(paths["summary"].read_bytes())
    assert data["verdict"] == "fail" and data["metrics"]["suppression_violations"] == 1
    assert data["failures"][0]["reproduce"].startswith("reproduce with: shopsim replay")
    (tmp_path / "report.html").unlink()
    assert main(["report", str(tmp_path), "--quiet"]) == 1
    assert (tmp_path / "report.html").is_file() and (tmp_path / "junit.xml").is_file()


def test_report_command_without_summary_is_an_input_error(tmp_path: Path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no summary.json" in capsys.readouterr().err
