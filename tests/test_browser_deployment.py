"""Real browser: the Deployment page measures in the background, then the Export page's ONNX download
arrives as a file that ONNX Runtime loads and runs (the model a user takes elsewhere).
"""
from __future__ import annotations

from urllib.parse import urlencode

import numpy as np
import onnxruntime as ort
import pytest
from browser_kit import ARTIFACTS, RERUN_TIMEOUT_MS, TRAIN_TIMEOUT_MS
from browser_kit import screenshot as _screenshot
from browser_kit import wait_idle as _wait_idle

from core.data import load_dataset

pytestmark = pytest.mark.browser
MEASURE_TIMEOUT_MS = 120_000  # exports and about 5 s of timing, on a shared machine


def test_deployment_page_and_onnx_download_run_in_onnx_runtime(app_url, page, tmp_path):
    query = {"prune": "50", "method": "structured", "scope": "layer"}
    page.goto(f"{app_url}/?{urlencode({**query, 'page': 'deployment'})}")
    page.get_by_role("heading", name="What it really costs").wait_for(timeout=TRAIN_TIMEOUT_MS)
    page.get_by_text("Cutting out 50 % of the units").wait_for(timeout=MEASURE_TIMEOUT_MS)
    _wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    _screenshot(page, "deployment")

    page.goto(f"{app_url}/?{urlencode({**query, 'page': 'export'})}")
    page.get_by_role("heading", name="Export this comparison").wait_for(timeout=TRAIN_TIMEOUT_MS)
    _wait_idle(page)
    with page.expect_download(timeout=RERUN_TIMEOUT_MS) as info:
        page.get_by_role("button", name="ONNX fp32").click()
    download = info.value
    assert download.suggested_filename.endswith("_prune50_structured_bits32_fp32.onnx")
    path = tmp_path / download.suggested_filename
    download.save_as(path)

    data = load_dataset("mnist5k")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = sess.run(["y"], {"x": data.x_test[:256].numpy()})[0]
    assert logits.shape == (256, 10) and np.isfinite(logits).all()
    assert [tuple(i.shape) for i in sess.get_inputs()] == [("n", 1, 28, 28)]
