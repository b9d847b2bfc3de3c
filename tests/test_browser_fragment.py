"""Real-browser tests of the page fragment (ui/page_run.py): a main slider's move reruns only the page.

The move must still update everything it changes (the charts, the measured sparsity under the slider, the
URL, the share link) and nothing may pile up in the sidebar; a page's button that changes a sidebar setting
(a lesson's Next) and a move that changes a sidebar note must still show in the sidebar (a full run).
"""
from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from browser_kit import RERUN_TIMEOUT_MS, TRAIN_TIMEOUT_MS
from browser_kit import expect as _expect
from browser_kit import screenshot as _screenshot
from browser_kit import wait_idle as _wait_idle

pytestmark = pytest.mark.browser


def _frames(page) -> list[ForwardMsg]:
    """Every ForwardMsg the page receives from now on (decoded from Chromium's own record of the socket)."""
    frames: list[ForwardMsg] = []
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")

    def received(event) -> None:
        if event["response"]["opcode"] == 2:
            msg = ForwardMsg()
            msg.ParseFromString(base64.b64decode(event["response"]["payloadData"]))
            frames.append(msg)
    cdp.on("Network.webSocketFrameReceived", received)
    return frames


def _open_overview(page, base: str, query: str = "") -> None:
    page.goto(f"{base}/?page=overview{query}")
    page.get_by_role("heading", name="Original vs compressed").wait_for(timeout=TRAIN_TIMEOUT_MS)
    page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)


def _press(page, name: str, key: str = "ArrowRight") -> None:
    slider = page.get_by_role("slider", name=name)
    before = slider.get_attribute("aria-valuetext")
    slider.focus()
    page.keyboard.press(key)
    _expect(slider).not_to_have_attribute("aria-valuetext", before, timeout=RERUN_TIMEOUT_MS)
    page.wait_for_timeout(300)  # the rerun the move asked for has started
    _wait_idle(page)


def _settings(page) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlsplit(page.url).query).items()}


def test_a_pruning_move_reruns_only_the_page_and_updates_everything_it_changes(app_url, page):
    _open_overview(page, app_url)
    sidebar = page.locator('[data-testid="stSidebar"]')
    # A node the full run draws (the glossary's button): a full rerun would resend it, the fragment does not.
    page.evaluate("() => { window.__glossary = [...document.querySelectorAll('[data-testid=\"stSidebar\"] button')]"
                  ".find(b => b.textContent.includes('Glossary')); }")
    frames = _frames(page)
    for step in range(1, 4):
        frames.clear()
        _press(page, "Pruning rate")
        card = page.locator('[data-testid="stMetric"]').filter(has_text="Sparsity")
        _expect(card.locator('[data-testid="stMetricValue"]')).to_have_text(f"{step} %", timeout=RERUN_TIMEOUT_MS)
        kinds = [m.WhichOneof("type") for m in frames]
        assert "script_finished" in kinds and "navigation" not in kinds  # no full run: no navigation resent
        if step > 1:  # not even one started and replaced (ui.rerun_requests; a session's first move has
            assert kinds.count("new_session") == 1, kinds  # no earlier request to compare with)
        deltas = [m for m in frames if m.WhichOneof("type") == "delta"]
        assert deltas and all(m.delta.fragment_id for m in deltas)  # every element the fragment's
        # The sidebar's glossary is not among them (nor the model's controls): only the page's part was sent.
        assert not any(m.delta.new_element.WhichOneof("type") == "selectbox" for m in deltas)
        assert _settings(page)["prune"] == str(step)
        measured = sidebar.get_by_text(re.compile(r"^Measured: "))
        _expect(measured).to_have_text(f"Measured: {step}.0 % of weights zero.", timeout=RERUN_TIMEOUT_MS)
    assert page.evaluate("() => window.__glossary.isConnected")  # the same node: never redrawn
    # Nothing piled up in the sidebar after three moves.
    assert sidebar.get_by_role("slider", name="Pruning rate").count() == 1
    assert sidebar.get_by_text(re.compile(r"^Measured: ")).count() == 1
    assert sidebar.get_by_role("button", name=re.compile("Share")).count() == 1
    assert sidebar.get_by_role("button", name=re.compile("Glossary")).count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0
    # The share link follows the move.
    sidebar.get_by_role("button", name=re.compile("Share")).click()
    link = page.locator('[data-testid="stPopoverBody"] code').first
    link.wait_for(timeout=RERUN_TIMEOUT_MS)
    shared = {k: v[-1] for k, v in parse_qs(urlsplit(link.inner_text()).query).items()}
    assert shared["prune"] == "3" and shared["page"] == "overview"
    page.keyboard.press("Escape")
    for viewport, name in (({"width": 1280, "height": 720}, "fragment-overview-1280"),
                           ({"width": 390, "height": 844}, "fragment-overview-390")):
        page.set_viewport_size(viewport)
        page.wait_for_timeout(300)
        _screenshot(page, name)


def test_closed_share_link_and_layer_table_are_not_resent_and_open_whole(app_url, page):
    """Closed, the share popover and "Layer by layer" send nothing per move; opened, they show all they hold
    (the popover, placed before its contents arrive, still opens upwards and wholly in view at 720p)."""
    page.set_viewport_size({"width": 1280, "height": 720})
    _open_overview(page, app_url)
    frames = _frames(page)
    _press(page, "Pruning rate")
    elements = [m.delta.new_element.WhichOneof("type") for m in frames if m.WhichOneof("type") == "delta"]
    assert elements and "code" not in elements and "dataframe" not in elements
    blocks = [m.delta.add_block.WhichOneof("type") for m in frames if m.delta.WhichOneof("type") == "add_block"]
    assert "column" not in blocks  # the cards' two flex rows, not st.columns' block per column
    cards = page.locator('[data-testid="stMain"] [data-testid="stMetric"]')
    boxes = [cards.nth(i).bounding_box() for i in range(6)]
    for top, bottom in zip(boxes[:3], boxes[3:]):  # two rows of three that line up like columns
        assert abs(top["x"] - bottom["x"]) <= 4 and abs(top["width"] - bottom["width"]) <= 4, (top, bottom)
        assert bottom["y"] > top["y"] + top["height"] - 4
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    lefts = {round(cards.nth(i).bounding_box()["x"]) for i in range(6)}
    assert len(lefts) == 1, f"a phone stacks the cards: {lefts}"
    page.set_viewport_size({"width": 1280, "height": 720})
    page.wait_for_timeout(300)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_role("button", name=re.compile("Share")).click()
    links = page.locator('[data-testid="stPopoverBody"] [data-testid="stCode"]')
    _expect(links).to_have_count(2, timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)
    for i in range(2):
        box = links.nth(i).bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= 720, f"link {i} cut off: {box}"
    assert "prune=1" in links.first.inner_text()
    page.keyboard.press("Escape")
    page.locator('[data-testid="stExpander"] summary').filter(has_text="Layer by layer").click()
    table = page.locator('[data-testid="stExpander"] [data-testid="stDataFrame"]')
    table.wait_for(timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_move_that_changes_a_sidebar_note_shows_it(app_url, page):
    """TWN is a 2-bit code: one bit width up, the quantization group says the range is set by MSE."""
    _open_overview(page, app_url, "&bits=2&range=twn")
    note = page.locator('[data-testid="stSidebar"]').get_by_text(re.compile("TWN .* is a 2-bit code"))
    assert note.count() == 0
    _press(page, "Bit width")
    _expect(note).to_have_count(1, timeout=RERUN_TIMEOUT_MS)
    assert "at 3 bits" in note.inner_text()
    _press(page, "Bit width", "ArrowLeft")
    _expect(note).to_have_count(0, timeout=RERUN_TIMEOUT_MS)


def test_a_lesson_step_from_the_page_updates_the_sidebar(app_url, page):
    """Next in a lesson's box (drawn by the fragment) sets the pruning method, a full-run control."""
    _open_overview(page, app_url, "&lesson=magnitude-vs-random&step=2")
    page.get_by_text("step 2 of").wait_for(timeout=RERUN_TIMEOUT_MS)
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_role("radio", name=re.compile("^Magnitude")).is_checked()
    page.get_by_role("button", name="Next").click()
    page.get_by_text("step 3 of").wait_for(timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)
    _expect(sidebar.get_by_role("radio", name=re.compile("^Random"))).to_be_checked(timeout=RERUN_TIMEOUT_MS)
    assert _settings(page)["method"] == "random"
    assert page.get_by_role("slider", name="Pruning rate").get_attribute("aria-valuetext") == "50%"
    assert page.locator('[data-testid="stException"]').count() == 0


def test_apply_to_the_sidebar_on_layer_sensitivity_updates_the_sidebar(app_url, page):
    """The page's button (drawn by the fragment) puts a per-layer plan in the sidebar: a full run shows it."""
    page.goto(f"{app_url}/?page=sensitivity&prune=30&bits=8&sens_plan=fc1:p0.5b4")  # a plan from a link
    apply = page.get_by_role("button", name="Apply to the sidebar")
    apply.wait_for(timeout=TRAIN_TIMEOUT_MS)
    _wait_idle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_text("Per-layer plan (off)").count() == 1
    apply.click()
    page.get_by_role("button", name="Applied to the sidebar").wait_for(timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)
    _expect(sidebar.get_by_text("This plan came from the Sensitivity page")).to_have_count(1, timeout=RERUN_TIMEOUT_MS)
    assert sidebar.get_by_text("Per-layer plan (off)").count() == 0
    plan = _settings(page)["plan"]
    assert plan and sidebar.get_by_role("textbox").first.input_value() == plan
    assert page.get_by_role("slider", name="Pruning rate").get_attribute("aria-valuetext") == "0%"
    assert _settings(page)["prune"] == "0" and _settings(page)["bits"] == "32"
    assert page.locator('[data-testid="stException"]').count() == 0
