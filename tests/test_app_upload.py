"""AppTest of refused uploads: the app's own words, PyTorch's message folded away without its colour
codes or its advice to load unsafely; a share link made while uploaded weights are in use says so.
"""
from __future__ import annotations

import io

import torch
from conftest import open_app
from streamlit.testing.v1 import AppTest

import models
import ui
from ui.page_frame import SHARE_OPEN


class WritesAFile:
    """Unpickling this calls open(path, "w"): the file appears only if a loader executes pickled code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _upload(at: AppTest, name: str, blob: bytes) -> AppTest:
    return at.file_uploader(key=ui.OWN_MODEL_FILE_KEY).set_value((name, blob, "application/octet-stream")).run()


def test_a_refused_pickle_is_explained_in_our_words_with_the_detail_folded_away(tmp_path):
    target = tmp_path / "pwned.txt"
    at = _upload(open_app("upload"), "evil.pt", _torch_bytes({"0.weight": WritesAFile(str(target))}))
    assert not at.exception and not target.exists()
    message = at.error[0].value
    assert message.startswith("**evil.pt** was not loaded.") and "Nothing in the file was run" in message
    assert "state_dict()" in message
    for unsafe in ("\x1b", "Re-running", "weights_only", "trust", "safe_globals"):
        assert unsafe not in message
    (expander,) = [e for e in at.expander if e.label.startswith("Technical detail")]
    (detail,) = [c.value for c in expander.code]
    assert "Unsupported global" in detail and "open" in detail
    for unsafe in ("\x1b", "Re-running", "weights_only", "set to `False`", "safe_globals", "trust"):
        assert unsafe not in detail, unsafe


def test_a_damaged_torch_file_says_so_and_a_good_file_clears_the_refusal():
    state = models.create_model("mlp", (1, 28, 28), 10).state_dict()
    blob = _torch_bytes(state)
    at = _upload(open_app("upload"), "cut.pt", blob[:400])
    assert "damaged or incomplete" in at.error[0].value
    assert [e for e in at.expander if e.label.startswith("Technical detail")]
    at = _upload(at, "mlp.pt", blob)
    assert not at.error and not [e for e in at.expander if e.label.startswith("Technical detail")]


def test_the_share_link_says_it_cannot_carry_uploaded_weights():
    torch.manual_seed(0)
    at = open_app("upload")
    at.session_state[SHARE_OPEN] = True  # the share popover open: its contents are drawn
    assert not [w for w in at.run().warning if "cannot carry your uploaded weights" in w.value]
    at = _upload(at, "mlp.pt", _torch_bytes(models.create_model("mlp", (1, 28, 28), 10).state_dict()))
    assert not at.exception
    assert [w for w in at.warning if "cannot carry your uploaded weights" in w.value]
    at.toggle(key="own_model_use").set_value(False).run()  # back to the built-in model: the link is whole
    assert not [w for w in at.warning if "cannot carry your uploaded weights" in w.value]
