"""``junit.xml`` for CI: one test case per threshold and one per check.

``<testsuite name="shopsim.thresholds">``: a case per threshold, ``<failure>`` when it does not
hold (message = actual value; text = the worst attributed examples of the related check).
``<testsuite name="shopsim.checks">``: a case per registered check, ``<error>`` when the check
crashed, ``system-out`` with its failure count by cause. Times are seconds.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_METRIC_CHECK = {
    "trigger_recall": "trigger_recall",
    "suppression_violations": "suppression_violations",
    "suppression_violation_rate": "suppression_violations",
    "false_triggers": "false_triggers",
    "duplicate_entries": "duplicate_entries",
    "unaddressable_intent": "unaddressable_intent",
    "merge_completeness": "merge_completeness",
    "tracking_plan_violations": "tracking_plan",
    "ingestion_loss": "ingestion_loss",
    "delivered_recall": "platform_rules",
}


def render_junit(summary: Mapping[str, Any]) -> bytes:
    """The junit XML document as bytes."""
    thresholds = summary.get("thresholds", [])
    checks = summary.get("checks", [])
    failures = summary.get("failures", [])
    root = ET.Element("testsuites", name="shopsim")
    suite_t = ET.SubElement(root, "testsuite", name="shopsim.thresholds", tests=str(len(thresholds)))
    failed = 0
    for t in thresholds:
        case = ET.SubElement(
            suite_t, "testcase", classname="shopsim.thresholds", name=str(t.get("threshold"))
        )
        if t.get("passed") and t.get("note"):
            # A pass with a caveat (a recall of 0 out of 0 tested nothing): CI logs show it.
            ET.SubElement(case, "system-out").text = f"note: {t.get('note')}"
        if not t.get("passed"):
            failed += 1
            metric = str(t.get("metric", "")).split("[", 1)[0]
            check = _METRIC_CHECK.get(metric, "")
            examples = [f for f in failures if f.get("check") == check][:5]
            text = "\n\n".join(
                f"{f.get('title')}: {f.get('message')}\ncause: {f.get('cause')}\n"
                f"{f.get('reproduce') or ''}".strip()
                for f in examples
            )
            note = f" ({t.get('note')})" if t.get("note") else ""
            failure = ET.SubElement(
                case, "failure", message=f"actual {t.get('actual')}{note}", type="threshold"
            )
            failure.text = text
    suite_t.set("failures", str(failed))
    suite_c = ET.SubElement(root, "testsuite", name="shopsim.checks", tests=str(len(checks)))
    errors = 0
    causes = summary.get("causes", {})
    for c in checks:
        case = ET.SubElement(
            suite_c,
            "testcase",
            classname="shopsim.checks",
            name=str(c.get("name")),
            time=f"{c.get('seconds', 0):.4f}",
        )
        if c.get("error"):
            errors += 1
            ET.SubElement(case, "error", message=str(c.get("error")), type="check_crashed")
        out = ET.SubElement(case, "system-out")
        by_cause = ", ".join(f"{k}: {v}" for k, v in (causes.get(c.get("name"), {}) or {}).items())
        out.text = f"{c.get('failures', 0)} findings" + (f" ({by_cause})" if by_cause else "")
    suite_c.set("errors", str(errors))
    suite_c.set("failures", "0")
    root.set("tests", str(len(thresholds) + len(checks)))
    root.set("failures", str(failed))
    root.set("errors", str(errors))
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def write_junit(run_dir: Path, summary: Mapping[str, Any]) -> Path:
    path = run_dir / "junit.xml"
    path.write_bytes(render_junit(summary))
    return path
