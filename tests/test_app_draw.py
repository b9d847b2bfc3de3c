"""The "Your digit" page through AppTest: uploads (good, bad, blank), a drawing handed to the canvas
widget, predictions and maps that follow the sidebar, the 8x8 digits, colour data sets refused.

Runs app.py with ?page=draw like a browser (see `_navigation_like_a_server` in
tests/conftest.py). Drawing with a mouse is covered in tests/test_browser_draw.py.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from conftest import model_group
from streamlit.testing.v1 import AppTest

import ui
from core import data as datasets

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 120  # the first run may train LeNet-5 on mnist5k
UPLOAD = "Upload a picture"




def open_page(**params: object) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["page"] = "draw"
    for key, value in params.items():
        at.query_params[key] = str(value)
    return at.run()


def picture(digit: str, dark_on_light: bool = True, size: tuple[int, int] = (300, 400), kind: str = "PNG") -> bytes:
    """A photo-like picture of a "1" or a "7" drawn with thick strokes (PNG or JPEG bytes)."""
    ink, paper = (0, 255) if dark_on_light else (255, 0)
    image = Image.new("L", size, paper)
    w, h = size
    lines = {"1": [(w * 0.5, h * 0.15), (w * 0.5, h * 0.85)],
             "7": [(w * 0.25, h * 0.15), (w * 0.75, h * 0.15), (w * 0.45, h * 0.85)]}[digit]
    ImageDraw.Draw(image).line(lines, fill=ink, width=max(3, w // 12), joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format=kind)
    return buffer.getvalue()


def upload(at: AppTest, name: str, data: bytes, mime: str = "image/png") -> AppTest:
    if at.radio(key="draw_source").value != UPLOAD:
        at.radio(key="draw_source").set_value(UPLOAD).run()
    return at.file_uploader(key="draw_upload").set_value((name, data, mime)).run()


def says(at: AppTest) -> dict[str, str]:
    """The two models' answers: {"Original": "7", "Compressed": "7"}."""
    return {m.label.split()[0]: m.value for m in at.metric if m.label.endswith("model says")}


def rankings(at: AppTest) -> list[str]:
    """The top-3 lists (original's, then compressed's) as shown."""
    return [m.value for m in at.markdown if m.value.startswith("1. **")]


def seen(at: AppTest) -> str:
    """The caption of the one image on the page: what the models see."""
    (image,) = at.get("image")
    return image.captions[0]


def healthy(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Your digit"]


def test_the_page_invites_a_drawing():
    at = open_page()
    healthy(at)
    assert not at.error
    assert any("Draw a digit" in i.value for i in at.info)
    assert not says(at) and not at.get("plotly_chart")


@pytest.mark.parametrize("digit, dark_on_light, kind", [("1", True, "PNG"), ("7", True, "JPEG"), ("7", False, "PNG")])
def test_an_uploaded_digit_is_read_by_both_models(digit, dark_on_light, kind):
    at = upload(open_page(), f"digit.{kind.lower()}", picture(digit, dark_on_light, kind=kind), f"image/{kind.lower()}")
    healthy(at)
    assert not at.error, [e.value for e in at.error]
    assert says(at) == {"Original": digit, "Compressed": digit}
    assert len(rankings(at)) == 2 and all(r.count("%") == 3 for r in rankings(at))
    assert [e.key for e in at.get("plotly_chart")] == ["draw_saliency"]
    assert "28×28 pixels, centred by mass" in seen(at)


@pytest.mark.parametrize("name, data, message", [
    ("notes.png", b"this is a text file with a .png name\n" * 10, "not an image: upload a PNG or JPEG"),
    ("anim.png", None, "GIF images are not supported"),
    ("cut.png", picture("7")[:300], "damaged or truncated"),
])
def test_a_bad_file_gives_a_message_and_the_page_keeps_working(name, data, message):
    if data is None:  # a GIF renamed .png: the browser's file filter only looks at the name
        buffer = io.BytesIO()
        Image.new("L", (40, 40)).save(buffer, format="GIF")
        data = buffer.getvalue()
    at = upload(open_page(), name, data)
    healthy(at)
    assert len(at.error) == 1 and message in at.error[0].value, [e.value for e in at.error]
    assert not says(at)
    at = upload(at, "good.png", picture("1"))  # the next picture works
    assert not at.error and says(at) == {"Original": "1", "Compressed": "1"}


def test_a_blank_picture_invites_a_drawing():
    buffer = io.BytesIO()
    Image.new("RGB", (200, 200), "white").save(buffer, format="PNG")
    at = upload(open_page(), "blank.png", buffer.getvalue())
    healthy(at)
    assert not at.error
    assert any("empty: draw a digit" in i.value for i in at.info)


def test_a_drawing_from_the_canvas_is_read():
    # The canvas widget's value as its frontend sends it (streamlit-drawable-canvas 0.13): the
    # Fabric.js objects and a PNG data URL of the canvas. White strokes on black, 280x280.
    canvas = np.zeros((280, 280, 3), np.uint8)
    canvas[40:240, 130:150] = 255
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    at = open_page()
    at.session_state["draw_canvas"] = {"drawing": {"raw": {"objects": [{"type": "path"}]}, "data": url}}
    at.run()
    healthy(at)
    assert not at.info and not at.error
    assert says(at) == {"Original": "1", "Compressed": "1"}


def test_predictions_and_maps_follow_the_sidebar_and_the_method():
    at = upload(open_page(), "seven.png", picture("7"))
    original, compressed = rankings(at)
    chart = at.get("plotly_chart")[0].proto.spec
    at.slider(key="prune").set_value(90).run()
    healthy(at)
    assert rankings(at)[0] == original, "the original model must not change"
    assert rankings(at)[1] != compressed, "the compressed model's probabilities did not follow the pruning rate"
    assert at.get("plotly_chart")[0].proto.spec != chart
    chart = at.get("plotly_chart")[0].proto.spec
    at.selectbox(key="draw_method").set_value("integrated_gradients").run()
    healthy(at)
    assert at.get("plotly_chart")[0].proto.spec != chart
    assert "Integrated Gradients" in " ".join(m.value for m in at.markdown)


def test_the_8x8_digits_get_an_8x8_input():
    at = upload(open_page(dataset="digits", model="mlp"), "one.png", picture("1"))
    healthy(at)
    assert not at.error, [e.value for e in at.error]
    assert "8×8 pixels, filling the frame" in seen(at)
    assert set(says(at)) == {"Original", "Compressed"}
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    z = figure["data"][1]["z"]  # the original's map; Plotly sends arrays as {"bdata", "dtype", "shape"}
    assert (z["shape"].replace(" ", "") if isinstance(z, dict) else np.shape(z)) in ("8,8", (8, 8))


def test_colour_data_sets_are_refused_with_a_notice(monkeypatch):
    # CIFAR-10 needs a download; a tiny stand-in with its shape shows what the page does with colour.
    real_load = datasets.load_dataset

    def load(name: str = datasets.DEFAULT_DATASET, *args, **kwargs):
        if name != "cifar10":
            return real_load(name, *args, **kwargs)
        x, y = torch.zeros(4, 3, 32, 32), torch.zeros(4, dtype=torch.int64)
        return datasets.Dataset("cifar10", tuple("abcdefghij"), (3, 32, 32), x, y, x, y, (0.5,) * 3, (0.25,) * 3)

    monkeypatch.setattr(datasets, "load_dataset", load)
    ui.dataset.clear("cifar10")
    try:
        at = open_page(dataset="cifar10")
        healthy(at)
        assert any("works with the digit data sets" in i.value for i in at.info), [i.value for i in at.info]
        assert "draw_source" not in [r.key for r in at.radio]  # no canvas, no uploader
    finally:
        ui.dataset.clear("cifar10")


def _fingerprint(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode() + tensor.numpy().tobytes())
    return digest.hexdigest()


def test_the_shared_model_is_untouched():
    at = open_page()
    shared = ui._training_job(ui.train_config("lenet5", "mnist5k")).result.model
    before = _fingerprint(shared), shared.training, [p.requires_grad for p in shared.parameters()]
    at = upload(at, "seven.png", picture("7"))
    for method in ("saliency", "integrated_gradients", "occlusion", "grad_cam"):
        at.selectbox(key="draw_method").set_value(method).run()
        healthy(at)
    assert (_fingerprint(shared), shared.training, [p.requires_grad for p in shared.parameters()]) == before


def test_a_method_the_new_model_lacks_falls_back_to_one_it_has():
    at = upload(open_page(), "seven.png", picture("7"))
    at.selectbox(key="draw_method").set_value("grad_cam").run()
    model_group(at).selectbox(key="model").set_value("mlp").run()  # no convolution: no Grad-CAM
    healthy(at)
    method = at.selectbox(key="draw_method")
    assert "Grad-CAM" not in method.options and method.value == "saliency"  # the first method offered
    assert len(at.get("plotly_chart")) == 1
