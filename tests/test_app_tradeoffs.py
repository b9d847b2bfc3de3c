"""The Trade-offs, Forgotten examples and Sanity check pages through Streamlit's AppTest.

Every test opens app.py (the router) with ?page=<name>, navigating like a server (the
`_navigation_like_a_server` fixture of conftest.py). The plain renders use the default
model (LeNet-5 on mnist5k, cached on disk like in the app); the heavier variants (seeds,
fine-tuning, clicks, extreme settings) use the small MLP on "digits", whose sweeps take
about a second, trained into a temporary model cache.

AppTest cannot click a Plotly chart: `click_grid_cell` sends the selection the browser
would send for a click on a grid cell (a widget state for the chart), so the page's
on_select callback runs as in the app; tests/test_browser.py clicks the real chart.
"""
from __future__ import annotations

import base64
import io
import json
import threading
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

import ui
import ui.cache
import ui.panels
from core.explain.attribution import METHOD_LABELS, METHODS
from core.studies.sweeps import (BIT_WIDTHS, CONFIG_COLUMNS, FAITHFULNESS_METRICS, QUALITY_METRICS, SALIENCY_METRICS,
                                 SPARSITIES)
from conftest import Calls, model_group

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180  # a first run may train models and run both sweeps on LeNet-5
TITLES = {"tradeoffs": "Where do accuracy and explanations break?",
          "forgotten": "Which examples does a compressed model forget?",
          "sanity": "Sanity check: does the explanation depend on the model?"}
CHARTS = {"tradeoffs": ["curve_sparsity", "curve_bits", "sweep_grid"],
          "forgotten": ["pie_curve", "class_impact"],
          "sanity": ["sanity_curve", "sanity_maps"]}
FAST = {"forgotten": {"pie_size": 3}}  # three models per population instead of five
# The columns core/studies/sweeps.py documents for the sweep's DataFrame and its downloadable CSV.
CSV_COLUMNS = ["curve", "baseline", "matches_sidebar", "seed", *CONFIG_COLUMNS, "sparsity", "fine_tuned", "accuracy",
               "agreement", *(f"{m}_{s}" for m in SALIENCY_METRICS for s in ("mean", "std")), "degenerate",
               *FAITHFULNESS_METRICS, *QUALITY_METRICS]




# ---------------------------------------------------------------- helpers
def open_app(page: str, **params: object) -> AppTest:
    """A fresh session of app.py on `page`, with `params` in the URL (sidebar and page settings), once every
    table it started is measured (the page shows the sidebar's own at once and the others when done)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["page"] = page
    for key, value in {**FAST.get(page, {}), **params}.items():
        at.query_params[key] = str(value)
    return settle(at.run())


def settle(at: AppTest) -> AppTest:
    """Rerun once the background tables are measured, as the page's own refresh would (AppTest has no timer)."""
    if page_started_tables(at):
        assert ui.cache.wait_for_tables(TIMEOUT)
        at.run()
    return at


def page_started_tables(at: AppTest) -> bool:
    return any("Still measuring" in i.value for i in at.info)


def assert_healthy(at: AppTest, page: str) -> None:
    assert not at.exception, [(e.value, *e.stack_trace) for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.title] == [TITLES[page]]


def charts(at: AppTest) -> dict[str, dict]:
    """Every Plotly chart on the page, keyed by its widget key, as the figure's JSON."""
    return {e.key: json.loads(e.proto.spec) for e in at.get("plotly_chart")}


def array(value) -> np.ndarray:
    """A figure's data array: plotly writes numpy arrays as base64 typed arrays ({dtype, bdata, shape})."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.asarray(value)


def trace(fig: dict, name: str) -> dict:
    (found,) = [t for t in fig["data"] if t.get("name") == name]
    return found


def marker_names(fig: dict) -> list[str]:
    return [t["name"] for t in fig["data"] if t.get("name", "").startswith("current setting")]


def vlines(fig: dict) -> list[float]:
    return [s["x0"] for s in fig["layout"].get("shapes", []) if s["x0"] == s["x1"]]


def grid_outline(at: AppTest) -> tuple[str, str]:
    outline = trace(charts(at)["sweep_grid"], "current setting")
    return outline["x"][0], outline["y"][0]


def click_grid_cell(at: AppTest, amount: float, bits: int) -> AppTest:
    """Rerun as after a click on the grid cell (amount, bits): the chart's selection, as the browser sends it.

    AppTest has no Plotly element to click, so the selection is added to the widget states
    of the next run (private API: AppTest._tree and _run, as AppTest.run itself does). The
    point is what Chromium sent in tests/test_browser.py: Plotly.js keeps the numeric
    customdata as typed arrays, so a row arrives as {"0": amount, "1": bits}.
    """
    element = next(e for e in at.get("plotly_chart") if e.key == "sweep_grid")
    cells = trace(json.loads(element.proto.spec), "settings")
    custom = array(cells["customdata"])
    (k,) = np.flatnonzero(np.isclose(custom[:, 0], amount) & (custom[:, 1] == bits))
    point = {"curve_number": 0, "point_number": int(k), "point_index": int(k), "x": cells["x"][k],
             "y": cells["y"][k], "customdata": {str(i): v for i, v in enumerate(custom[k].tolist())},
             "text": cells["text"][k]}
    selection = {"selection": {"points": [point], "point_indices": [int(k)], "box": [], "lasso": []}}
    states = at._tree.get_widget_states()
    states.widgets.append(WidgetState(id=element.proto.id, string_value=json.dumps(selection)))
    return at._run(states)


# ---------------------------------------------------------------- 1. every page renders
@pytest.mark.parametrize("page", list(TITLES))
def test_page_renders_its_charts(page):
    at = open_app(page)
    assert_healthy(at, page)
    shown = charts(at)
    assert list(shown) == CHARTS[page]
    assert all(fig["data"] for fig in shown.values())
    assert at.caption[0].value.startswith("LeNet-5")  # the setup line under the title


def test_tradeoffs_page_shows_curves_markers_grid_and_table():
    at = open_app("tradeoffs")
    assert_healthy(at, "tradeoffs")
    shown = charts(at)
    baselines = {"global magnitude", "layer-wise magnitude", "random", "global structured"}  # the sidebar's scope
    for key in ("curve_sparsity", "curve_bits"):
        assert baselines == {t.get("name") for t in shown[key]["data"] if t.get("mode") == "lines+markers"}, key
    assert marker_names(shown["curve_sparsity"]) == ["current setting (0 %)"]
    assert marker_names(shown["curve_bits"]) == ["current setting (32 bits, no quantization)"]
    cells = trace(shown["sweep_grid"], "settings")
    assert len(cells["x"]) == len(SPARSITIES) * len(BIT_WIDTHS)  # the 1-bit row and the 100 % column included
    assert set(cells["y"]) == {"1", "2", "3", "4", "5", "6", "7", "8", "32 (off)"} and "100 %" in cells["x"]
    assert grid_outline(at) == ("0 %", "32 (off)")
    table = at.dataframe[0].value
    assert {"sparsity", "bits"} <= set(table["curve"]) and len(table) > 40
    assert METHOD_LABELS["grad_cam"] in at.selectbox(key="sweep_method").options  # LeNet-5 has convolutions
    assert at.get("download_button")[0].label.startswith("Download")


def test_grad_cam_is_not_offered_for_an_mlp(small):
    # Right after the LeNet-5 renders above, whose sweeps are still cached: Grad-CAM chosen on the CNN,
    # then the MLP in the same rerun.
    at = settle(model_group(open_app("tradeoffs")))
    at.selectbox(key="sweep_method").set_value("grad_cam")
    at.selectbox(key="model").set_value(small["model"])
    at.selectbox(key="dataset").set_value(small["dataset"]).run()
    assert_healthy(at, "tradeoffs")
    assert METHOD_LABELS["grad_cam"] not in at.selectbox(key="sweep_method").options
    assert at.selectbox(key="sweep_method").value == "saliency"
    assert [w.value for w in at.warning] == ["Grad-CAM is not available here: showing Gradient (saliency)."]
    assert at.caption[0].value.startswith("MLP") and list(charts(at)) == CHARTS["tradeoffs"]


# ---------------------------------------------------------------- 2. the sidebar moves the curves
def test_bits_and_pruning_move_the_markers_and_curves(small):
    at = open_app("tradeoffs", **small)
    assert_healthy(at, "tradeoffs")
    before = charts(at)
    at.select_slider(key="bits").set_value(4).run()
    assert_healthy(at, "tradeoffs")
    after = charts(at)
    assert marker_names(after["curve_bits"]) == ["current setting (4 bits)"]
    assert vlines(after["curve_bits"]) == [4] != vlines(before["curve_bits"])
    # The sparsity curves are now measured at 4 bits: same axis, other values.
    old, new = (trace(f["curve_sparsity"], "global magnitude") for f in (before, after))
    assert np.array_equal(array(old["x"]), array(new["x"]))
    assert not np.array_equal(array(old["y"]), array(new["y"]))
    assert grid_outline(at) == ("0 %", "4")

    at.slider(key="prune").set_value(90).run()
    assert_healthy(at, "tradeoffs")
    moved = charts(at)
    assert marker_names(moved["curve_sparsity"]) == ["current setting (90 %)"]
    assert vlines(moved["curve_sparsity"]) == [90]
    old, new = (trace(f["curve_bits"], "global magnitude") for f in (after, moved))
    assert not np.array_equal(array(old["y"]), array(new["y"]))  # bits curves now at 90 % sparsity
    assert grid_outline(at) == ("90 %", "4")
    assert (at.query_params["prune"], at.query_params["bits"]) == ("90", "4")


def test_slider_moves_and_map_clicks_measure_nothing_again(small, monkeypatch):
    """Every table has every sparsity x bit width: after the first view a slider move or a map click only
    slices them (and measures at most the sidebar's one off-axis cell); another method's table is new."""
    tables = Calls(ui.cache.sweeps.method_table)
    monkeypatch.setattr(ui.cache.sweeps, "method_table", tables)
    at = open_app("tradeoffs", scheme="affine", **small)  # a scheme no other test uses: its tables are new here
    assert tables.count == 4  # one per curve: global and layer-wise magnitude, random, structured
    grid = trace(charts(at)["sweep_grid"], "settings")
    for prune, bits in ((50, 32), (51, 32), (52, 6), (90, 1), (100, 2)):
        at.slider(key="prune").set_value(prune)
        at.select_slider(key="bits").set_value(bits).run()
        assert_healthy(at, "tradeoffs")
        assert not page_started_tables(at)
    click_grid_cell(at, 0.93, 3)
    assert_healthy(at, "tradeoffs")
    assert tables.count == 4
    assert trace(charts(at)["sweep_grid"], "settings") == grid
    at.radio(key="method").set_value("random").run()  # random is already a baseline: its table exists
    assert_healthy(at, "tradeoffs")
    assert tables.count == 4
    at.radio(key="scope").set_value("layer").run()  # layer-wise random is new; layer-wise structured too
    settle(at)
    assert_healthy(at, "tradeoffs")
    assert tables.count == 6
    # A lesson step (a new session at another setting) finds every table it needs: nothing to wait for.
    lesson = open_app("tradeoffs", scheme="affine", prune=70, bits=4, **small)
    assert_healthy(lesson, "tradeoffs")
    assert tables.count == 6 and not page_started_tables(lesson)
    assert grid_outline(lesson) == ("70 %", "4")


def test_structured_curve_follows_the_sidebar_scope(small):
    at = open_app("tradeoffs", **small)
    names = {t.get("name") for t in charts(at)["curve_sparsity"]["data"]}
    assert "global structured" in names and "layer-wise structured" not in names
    at.radio(key="scope").set_value("layer").run()
    settle(at)
    assert_healthy(at, "tradeoffs")
    names = {t.get("name") for t in charts(at)["curve_sparsity"]["data"]}
    assert "layer-wise structured" in names and "global structured" not in names
    table = at.dataframe[0].value
    structured = table[table.baseline == "layer-wise structured"]
    assert set(structured.prune_method) == {"structured"} and set(structured.prune_scope) == {"layer"}


def test_faithfulness_is_measured_along_the_curves_shown(small):
    at = open_app("tradeoffs", sweep_metric="deletion_auc", prune=55, bits=4, **small)
    assert_healthy(at, "tradeoffs")
    for key in ("curve_sparsity", "curve_bits"):
        lines = [t for t in charts(at)[key]["data"] if t.get("mode") == "lines+markers"]
        assert len(lines) == 4 and all(np.isfinite(array(t["y"]).astype(float)).all() for t in lines), key
    (star,) = [t for t in charts(at)["curve_sparsity"]["data"] if t.get("name", "").startswith("current setting")]
    assert np.isfinite(array(star["y"]).astype(float)).all() and np.allclose(array(star["x"]).astype(float), [55])
    table = at.dataframe[0].value
    assert at.session_state["sweep_metric"] == "deletion_gain"  # an old link's measure, under its new name
    assert table.deletion_gain.notna().all() and table.deletion_auc.notna().all()  # every point of the curves, the star included
    # The table behind the map has no faithfulness column filled: it is not shown there.
    assert "deletion_auc" not in ui.SETTINGS["grid_metric"].options


INFIDELITY = "infidelity gain over random"  # how the Show box lists it


def chance_lines(fig: dict) -> list[dict]:
    return [s for s in fig["layout"].get("shapes", []) if s.get("y0") == s.get("y1") == 0]


def test_infidelity_is_offered_only_for_maps_with_a_sign(small):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)  # a link asking for it with saliency maps
    for key, value in {**small, "page": "tradeoffs", "sweep_metric": "infidelity_gain"}.items():
        at.query_params[key] = value
    at.run()  # the notice is on this first run (settle's rerun, like the page's own, is a next run)
    assert not at.exception and not at.error
    assert [w.value for w in at.warning] == [
        "Infidelity gain over random is not available here: showing Deletion gain over random. Infidelity is "
        "measured only for maps with a sign (Gradient × Input, Integrated Gradients, Occlusion); Gradient "
        "(saliency) maps have none."]
    settle(at)
    assert at.session_state["sweep_metric"] == "deletion_gain"
    assert INFIDELITY not in at.selectbox(key="sweep_metric").options
    for key in ("curve_sparsity", "curve_bits"):  # the gain curves show where random orderings sit
        assert len(chance_lines(charts(at)[key])) == 1, key
    at.run()
    assert not at.warning  # said once, gone with the next run
    at.selectbox(key="sweep_method").set_value("input_x_gradient").run()
    assert INFIDELITY in at.selectbox(key="sweep_metric").options and not at.warning
    at.selectbox(key="sweep_metric").set_value("infidelity_gain").run()
    assert_healthy(at, "tradeoffs")
    assert not at.warning and at.session_state["sweep_metric"] == "infidelity_gain"
    lines = [t for t in charts(at)["curve_sparsity"]["data"] if t.get("mode") == "lines+markers"]
    assert lines and all(np.isfinite(array(t["y"]).astype(float)).all() for t in lines)  # measured, not empty
    at.selectbox(key="sweep_method").set_value("saliency").run()  # back to a method without a sign
    assert at.session_state["sweep_metric"] == "deletion_gain" and len(at.warning) == 1


def test_accuracy_curves_have_no_chance_line(small):
    at = open_app("tradeoffs", **small)
    assert not any(chance_lines(charts(at)[key]) for key in ("curve_sparsity", "curve_bits"))


def test_other_tables_show_progress_and_the_own_curves_at_once(small, monkeypatch):
    """While the other methods' tables are measured, the page draws what it has and says how far the rest are."""
    release = threading.Event()
    real = ui.cache.sweeps.method_table

    def slow(original, data, cfg, *args, **kwargs):
        if cfg.base.prune_method == "random":
            release.wait(60)  # the random table stays "measuring" until the test has looked
        return real(original, data, cfg, *args, **kwargs)

    monkeypatch.setattr(ui.cache.sweeps, "method_table", slow)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in {**small, "page": "tradeoffs", "granularity": "per_tensor", "bits": 4}.items():
        at.query_params[key] = value
    at.run()
    try:
        assert_healthy(at, "tradeoffs")
        (info,) = [i.value for i in at.info if "Still measuring" in i.value]
        assert "**random**" in info and ("waiting" in info or "settings" in info), info
        lines = {t.get("name") for t in charts(at)["curve_sparsity"]["data"] if t.get("mode") == "lines+markers"}
        assert "global magnitude" in lines and "random" not in lines
    finally:
        release.set()
    settle(at)
    assert "random" in {t.get("name") for t in charts(at)["curve_sparsity"]["data"]}


# ---------------------------------------------------------------- 3. seeds and fine-tuning
def test_two_seeds_draw_bands(small):
    at = open_app("tradeoffs", **small)
    assert not [t for t in charts(at)["curve_sparsity"]["data"] if t.get("fill") == "toself"]  # accuracy, 1 seed
    settle(at.slider(key="sweep_seeds").set_value(2).run())
    assert_healthy(at, "tradeoffs")
    for key in ("curve_sparsity", "curve_bits"):
        bands = [t["name"] for t in charts(at)[key]["data"] if t.get("fill") == "toself"]
        assert "global magnitude band" in bands and len(bands) >= 4, (key, bands)
    assert any("over 2 seeds" in c.value for c in at.caption)
    assert set(at.dataframe[0].value["n_seeds"]) == {2}


def test_fine_tuning_adds_dashed_curves(small):
    at = open_app("tradeoffs", **small)
    settle(at.select_slider(key="sweep_epochs").set_value(1).run())
    assert_healthy(at, "tradeoffs")
    for key in ("curve_sparsity", "curve_bits"):
        lines = {t["name"]: t["line"].get("dash") for t in charts(at)[key]["data"] if t.get("mode") == "lines+markers"}
        assert lines["global magnitude"] == "solid" and lines["global magnitude, fine-tuned"] == "dash", lines
        assert sum(name.endswith(", fine-tuned") for name in lines) == 4, lines
    assert any("Dashed lines" in c.value for c in at.caption)
    assert at.dataframe[0].value["fine_tuned"].any()


# ---------------------------------------------------------------- 4. the table as CSV
@pytest.fixture
def downloads(monkeypatch) -> dict[str, bytes]:
    """Bytes of every file the app hands to Streamlit's media storage in this test, by file id."""
    files: dict[str, bytes] = {}
    keep = MemoryMediaFileStorage.load_and_get_id

    def load_and_get_id(self, path_or_data, mimetype, kind, filename=None):
        file_id = keep(self, path_or_data, mimetype, kind, filename)
        files[file_id] = self.get_file(file_id).content
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", load_and_get_id)
    return files


def test_csv_download_has_the_documented_columns(small, downloads):
    at = open_app("tradeoffs", sweep_seeds=2, **small)
    assert_healthy(at, "tradeoffs")
    (button,) = at.get("download_button")
    csv = pd.read_csv(io.BytesIO(downloads[Path(button.proto.url).stem]))
    assert sorted(csv.columns) == sorted(CSV_COLUMNS)  # every documented column, no other
    assert set(csv["seed"]) == {0, 1} and {"sparsity", "bits", "reference"} <= set(csv["curve"])
    shown = at.dataframe[0].value  # the table on the page averages the seeds: one row per setting
    assert len(csv) == 2 * len(shown)
    assert csv["accuracy"].between(0, 1).all() and not csv["accuracy"].isna().any()


# ---------------------------------------------------------------- 5. clear messages, never an exception
def test_grad_cam_from_a_link_falls_back_with_a_notice(small):
    at = open_app("tradeoffs", sweep_method="grad_cam", **small)
    assert_healthy(at, "tradeoffs")
    assert at.selectbox(key="sweep_method").value == "saliency"
    assert any("Grad-CAM is not available" in w.value for w in at.warning)
    assert list(charts(at)) == CHARTS["tradeoffs"]


@pytest.mark.parametrize("case", ["grad_cam on an MLP", "empty probe set"])
def test_a_sweep_that_cannot_run_shows_a_warning(small, monkeypatch, case):
    if case == "grad_cam on an MLP":  # offer every method, as if the page forgot to filter them
        monkeypatch.setattr(ui, "available_methods", lambda setup: list(METHODS))
        params, expected = {"sweep_method": "grad_cam"}, "Grad-CAM needs a convolution layer"
    else:
        real = ui.sweep_check
        monkeypatch.setattr(ui, "sweep_check", lambda train, sweep: real(train, replace(sweep, probe_size=0)))
        params, expected = {}, "The probe set is empty"
    at = open_app("tradeoffs", **params, **small)
    assert_healthy(at, "tradeoffs")
    assert [w.value for w in at.warning if expected in w.value], [w.value for w in at.warning]
    assert not at.get("plotly_chart") and not at.get("download_button")


EXTREMES = [dict(prune=100, method="magnitude"), dict(prune=100, method="structured"),
            dict(prune=0, bits=1, scheme="affine", granularity="per_tensor"),
            dict(prune=99, method="random", scope="layer", bits=2, scheme="symmetric", granularity="per_channel")]


@pytest.mark.parametrize("page", list(TITLES))
def test_extreme_settings_do_not_break_the_page(small, page):
    at = open_app(page, **small)
    for setting in EXTREMES:
        for key, value in setting.items():
            {"prune": at.slider, "bits": at.select_slider}.get(key, at.radio)(key=key).set_value(value)
        at.run()
        assert not at.exception, (setting, [e.value for e in at.exception])
        assert_healthy(at, page)
        assert set(CHARTS[page]) <= set(charts(at)), setting


# ---------------------------------------------------------------- 6. a click on the grid
def test_grid_click_moves_the_sidebar(small):
    at = open_app("tradeoffs", **small)
    click_grid_cell(at, 0.9, 4)
    assert_healthy(at, "tradeoffs")
    assert (at.slider(key="prune").value, at.select_slider(key="bits").value) == (90, 4)
    assert (at.query_params["prune"], at.query_params["bits"]) == ("90", "4")
    assert grid_outline(at) == ("90 %", "4")
    shown = charts(at)
    assert marker_names(shown["curve_sparsity"]) == ["current setting (90 %)"]
    assert marker_names(shown["curve_bits"]) == ["current setting (4 bits)"]
    assert "90% magnitude pruning" in at.caption[0].value and "4-bit" in at.caption[0].value
    at.switch_page("pages/overview.py").run()  # the clicked setting is the sidebar's for every page
    assert not at.exception and (at.slider(key="prune").value, at.select_slider(key="bits").value) == (90, 4)


@pytest.mark.parametrize("points, expected", [
    ([{"customdata": {"0": 0.85, "1": 6}}], (85, 6)),          # a typed-array row, as the browser sends it
    ([{"customdata": {"1": 2, "0": 0.5}}], (50, 2)),
    ([{"customdata": [0.85, 6]}], (85, 6)),                    # a plain list
    ([{"customdata": [0.29, 32.0], "x": "29 %"}], (29, 32)),  # 0.29 * 100 = 28.999…: rounded, not cut
    ([{"customdata": ["0.93", "3"]}], (93, 3)),
    ([], (10, 8)),                                             # a click that deselects
    ([{"x": "90 %", "y": "4"}], (10, 8)),                      # a point without a setting
])
def test_grid_click_callback(monkeypatch, points, expected):
    state = {"sweep_grid": SimpleNamespace(selection=SimpleNamespace(points=points)), "prune": 10, "bits": 8}
    monkeypatch.setattr(ui.panels.st, "session_state", state)
    ui.panels._grid_clicked()
    assert (state["prune"], state["bits"]) == expected
    assert all(isinstance(state[k], int) for k in ("prune", "bits"))


# ---------------------------------------------------------------- 7. forgotten examples
def test_forgotten_gallery_appears_under_heavy_pruning():
    at = open_app("forgotten")
    assert_healthy(at, "forgotten")
    assert at.slider(key="pie_size").value == 3
    assert "No example is forgotten" in at.info[0].value
    assert list(charts(at)) == CHARTS["forgotten"]
    assert [m.value for m in at.metric if m.label == "Forgotten examples"] == ["0"]

    at.slider(key="prune").set_value(95).run()
    assert_healthy(at, "forgotten")
    assert not at.info
    gallery = [key for key in charts(at) if key.startswith("pie_") and key != "pie_curve"]
    assert 1 <= len(gallery) <= 6
    (count,) = [int(m.value.replace(",", "")) for m in at.metric if m.label == "Forgotten examples"]
    assert count >= len(gallery)
    assert vlines(charts(at)["pie_curve"]) == [95]


def test_pie_curve_is_not_recomputed_for_each_sparsity(small, monkeypatch):
    """The curve covers every sparsity already: moving the pruning slider only moves its marker."""
    curve_runs = Calls(ui.cache.pie_curve)
    monkeypatch.setattr(ui.cache, "pie_curve", curve_runs)
    at = open_app("forgotten", **small)
    first = curve_runs.count
    for prune in (50, 90, 99):
        at.slider(key="prune").set_value(prune).run()
        assert_healthy(at, "forgotten")
        assert vlines(charts(at)["pie_curve"]) == [prune]
    assert curve_runs.count == first
    at.select_slider(key="bits").set_value(2).run()  # another bit width is another curve
    assert curve_runs.count == first + 1


def test_a_forgotten_step_runs_only_the_compressed_population(small, monkeypatch):
    """The originals' votes are computed once per population; a slider step runs the compressed members only."""
    on_page = []  # calls made while the page ran (the prefetch thread guesses the next steps on its own)
    real = ui.cache.population_predictions
    monkeypatch.setattr(ui.cache, "population_predictions", lambda *a, **k: (
        threading.current_thread().name != "prefetch" and on_page.append(1)) or real(*a, **k))
    monkeypatch.setattr(ui.cache, "_quiet_server", lambda: True)  # one user, whatever ran before in this process
    at = open_app("forgotten", **small)
    for prune in (41, 43, 45):  # two apart: the prefetched neighbours are not this step
        assert ui.cache._population_prefetcher().idle()
        before = len(on_page)
        at.slider(key="prune").set_value(prune).run()
        assert_healthy(at, "forgotten")
        assert len(on_page) - before == 1, prune  # the compressed population only, not the originals again
    assert ui.cache._population_prefetcher().idle()
    before = len(on_page)
    at.slider(key="prune").set_value(46).run()  # an arrow-key step: its votes were prefetched
    assert len(on_page) == before


# ---------------------------------------------------------------- 8. sanity check
def test_a_sanity_step_randomizes_only_the_compressed_model(small, monkeypatch):
    runs = Calls(ui.cache.cascading_randomization)
    monkeypatch.setattr(ui.cache, "cascading_randomization", runs)
    at = open_app("sanity", **small)
    for prune in (61, 62):
        before = runs.count
        at.slider(key="prune").set_value(prune).run()
        assert_healthy(at, "sanity")
        assert runs.count - before == 1  # the original's curve is cached: not the slider's business

def test_sanity_method_and_image_change_the_figures():
    at = open_app("sanity")
    before = charts(at)
    at.selectbox(key="sanity_method").set_value("grad_cam").run()
    assert_healthy(at, "sanity")
    switched = charts(at)
    assert switched["sanity_curve"]["data"] != before["sanity_curve"]["data"]
    assert switched["sanity_maps"]["data"] != before["sanity_maps"]["data"]

    at.number_input(key="sanity_index").set_value(7).run()
    assert_healthy(at, "sanity")
    moved = charts(at)
    assert moved["sanity_maps"]["data"] != switched["sanity_maps"]["data"]  # another image's maps
    assert moved["sanity_curve"] == switched["sanity_curve"]  # the curve is over the fixed probe set


def test_tables_are_measured_in_the_order_asked_for():
    """ui.jobs.Turns: work runs one at a time in ticket order, whichever thread gets there first."""
    from ui.jobs import Turns

    turns, order, running = Turns(), [], []
    tickets = [turns.ticket() for _ in range(4)]

    def work(k):
        running.append(k)
        assert len(running) == 1  # never two at once
        order.append(k)
        running.remove(k)

    threads = [threading.Thread(target=turns.run, args=(t, lambda t=t: work(t))) for t in reversed(tickets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert order == tickets
    with pytest.raises(ZeroDivisionError):  # a failing turn still hands over to the next
        turns.run(turns.ticket(), lambda: 1 / 0)
    assert turns.run(turns.ticket(), lambda: "next") == "next"
