"""The comparison report's HTML page in a real headless browser, opened from the file system (no server): the
tables with every model's row, the best cells marked, every picture loaded; a screenshot is saved."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from depthforge.evaluation.compare import compare
from test_browser import ARGS, CHROMIUM
from test_compare import hf_folder, recipe_checkpoint

SCREENSHOT = Path(os.environ.get("DEPTHFORGE_COMPARE_SCREENSHOT", "/tmp/compare_report.png"))

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed")]


def test_report_page_shows_tables_and_pictures(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    models = [str(recipe_checkpoint(tmp_path / "narrow.ckpt", seed=0, width=0.125)),
              str(recipe_checkpoint(tmp_path / "wide.ckpt", seed=1)), str(hf_folder(tmp_path / "da-v2"))]
    report = compare(models, suites=["edges", "clutter"], out=tmp_path / "report", suite_n=2, progress=False,
                     device="cpu")
    page_file = Path(report["out"]) / "index.html"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(15_000)
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            assert page.title() == "depthforge: model comparison"
            for name in ("test", "edges", "clutter"):
                rows = page.eval_on_selector_all(f"#table-{name} tr", "rows => rows.map(r => r.innerText)")
                assert len(rows) == 1 + 3  # header + one row per model
                assert [r.split("\t")[0] for r in rows[1:]] == ["narrow.ckpt", "wide.ckpt", "da-v2 †"]
            assert page.locator("#table-test td.best").count() >= len(report["sets"]["test"]["columns"])
            sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
            assert len(sizes) == len(report["pictures"]) >= 5
            assert all(done and width > 0 for done, width in sizes), sizes
            assert all(u.startswith(("file://", "data:")) for u in requests), requests  # nothing from a network
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
