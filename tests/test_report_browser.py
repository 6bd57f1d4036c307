"""The HTML report in a real headless Chromium (Debian's ``chromium``): it renders, every image
(inlined crops and plots) decodes, and the console stays free of errors.

Without Chromium the test skips on a developer machine and FAILS when ``CI`` is set, so CI can
never pass by silently not looking at the report.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from personvlm.data.msp60k import load_jsonl
from personvlm.evaluation.evaluate import compute_metrics, describe_records
from personvlm.evaluation.report import write_report
from test_evaluate import _oracle, make_dataset

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message}; CI is set, the browser test must run")
    pytest.skip(message)


@pytest.mark.browser
@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    records = load_jsonl(make_dataset(tmp_path / "data"))
    samples, skipped = describe_records(_oracle(right=2), records, batch_size=3)
    metrics = compute_metrics(samples, "oracle", skipped)
    report = write_report(tmp_path / "report.html", samples, metrics)

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
            page.goto(report.as_uri(), wait_until="load")
            images = page.evaluate(
                "() => Array.from(document.images).map(i => ({src: i.src.slice(0, 22), ok: i.complete && i.naturalWidth > 0}))")
            title = page.title()
            headings = page.locator("h2").all_inner_texts()
            marks = page.locator(".mark").count()
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()

    assert title == "PersonVLM evaluation"
    assert {"Headline figures", "Per attribute", "Plots", "Gallery"} <= set(headings)
    crops = [i for i in images if i["src"].startswith("data:image/jpeg")]
    plots = [i for i in images if i["src"].startswith("data:image/png")]
    assert len(crops) == len(samples) and len(plots) >= 3
    assert all(i["ok"] for i in images), images
    assert marks > 0
    assert errors == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
