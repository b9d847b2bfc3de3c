"""The load test's pure parts (benchmarks/load_client.py): summaries, messages, what a session reads. No server."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import load_client as lc  # noqa: E402


@pytest.mark.parametrize("values", [[3.0], [1.0, 2.0], [5, 1, 4, 2, 3], list(np.linspace(0, 7, 31) ** 2)])
@pytest.mark.parametrize("q", [0, 50, 95, 100])
def test_percentile_matches_numpy(values, q):
    assert lc.percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_summary_of_known_waits_and_of_none():
    s = lc.summarize([0.1, 0.2, 0.3, 0.4, 1.0])
    assert s["n"] == 5 and s["p50"] == pytest.approx(0.3) and s["max"] == 1.0
    assert s["p95"] == pytest.approx(0.4 + 0.8 * 0.6)
    empty = lc.summarize([])
    assert empty["n"] == 0 and math.isnan(empty["p50"]) and math.isnan(empty["max"])


def test_rerun_message_is_the_browsers_client_state():
    states = [lc.slider_state("$$ID-ab12-prune", 35), lc.select_slider_state("$$ID-cd34-bits", "4")]
    msg = BackMsg()
    msg.ParseFromString(lc.rerun_message("?page=overview", states, "hash1", "", {"h2", "h1"}))
    cs = msg.rerun_script
    assert msg.WhichOneof("type") == "rerun_script"
    assert cs.query_string == "page=overview" and cs.page_script_hash == "hash1"
    assert list(cs.cached_message_hashes) == ["h1", "h2"]
    prune, bits = cs.widget_states.widgets
    assert prune.id == "$$ID-ab12-prune" and list(prune.double_array_value.data) == [35.0]
    assert bits.id == "$$ID-cd34-bits" and list(bits.string_array_value.data) == ["4"]
    assert cs.fragment_id == ""  # a full run
    msg.ParseFromString(lc.rerun_message("page=overview", states, "hash1", fragment_id="frag9"))
    assert msg.rerun_script.fragment_id == "frag9"  # a widget a fragment drew: that fragment alone


def test_widget_key_is_the_user_key_at_the_end_of_the_id():
    assert lc.widget_key("$$ID-c0d5e604a41224f13ee8b2f8e8f91283-prune") == "prune"
    assert lc.widget_key("some-generated-id") == ""


def _forward(**kind) -> bytes:
    msg = ForwardMsg()
    for name, value in kind.items():
        if name == "script_finished":
            msg.script_finished = value
        elif name == "caption":
            msg.delta.new_element.markdown.body = value
        elif name == "slider":
            msg.delta.new_element.slider.id, msg.delta.new_element.slider.options[:] = value
        elif name == "fragment":
            msg.delta.fragment_id = value
        elif name == "query":
            msg.page_info_changed.query_string = value
        elif name == "pages":
            for path, page_hash in value:
                msg.navigation.app_pages.add(url_pathname=path, page_script_hash=page_hash)
        elif name == "new_session":
            msg.new_session.page_script_hash = value
    return msg.SerializeToString()


def test_view_reads_a_run_as_the_browser_does():
    view = lc.View()
    stream = [_forward(new_session="p1"), _forward(pages=[("overview", "p1"), ("saliency", "p2")]),
              _forward(slider=("$$ID-ff-bits", ["2", "4", "32 (float, off)"]), fragment="frag9"),
              _forward(slider=("$$ID-ee-scheme", ["symmetric"])), _forward(query="page=overview&prune=35"),
              _forward(caption="Measured: 35.0 % of weights zero after pruning, 37.2 % after rounding to 2 bits.")]
    assert not any(view.feed(m) for m in stream)
    assert not view.feed(_forward(script_finished=ForwardMsg.FINISHED_EARLY_FOR_RERUN))  # another run follows
    assert view.feed(_forward(script_finished=ForwardMsg.FINISHED_SUCCESSFULLY))
    assert view.pages == {"overview": "p1", "saliency": "p2"} and view.page_script_hash == "p1"
    assert view.query_string == "page=overview&prune=35"
    assert view.widgets["bits"].options[-1] == "32 (float, off)"
    assert view.fragments == {"bits": "frag9", "scheme": ""}  # which fragment drew each widget ("": the app)
    assert view.measured() == (35.0, 2)
    view.feed(_forward(new_session="p1"))  # a new run forgets the old texts
    assert view.measured() == (None, None)


def test_a_message_sent_by_reference_is_read_from_the_cache():
    view = lc.View()
    full = ForwardMsg()
    full.ParseFromString(_forward(caption="Measured: 10.0 % of weights zero."))
    full.hash, full.metadata.cacheable = "abc", True
    view.feed(full.SerializeToString())
    view.texts.clear()
    ref = ForwardMsg(ref_hash="abc")
    view.feed(ref.SerializeToString())
    assert view.measured() == (10.0, None) and set(view.cache) == {"abc"}


def test_a_session_shown_another_setting_reports_a_mismatch():
    student = lc.Student("http://127.0.0.1:1", seed=0)
    student.prune, student.bits = 35, 4
    student.view.texts = ["Measured: 35.2 % of weights zero."]
    assert student._check() == ""
    student.view.texts = ["Measured: 60.0 % of weights zero."]
    assert "set 35 %" in student._check()
    student.view.texts = ["Measured: 35.0 % of weights zero after pruning, 40.0 % after rounding to 2 bits."]
    assert "set 4 bits" in student._check()
    student.view.texts = []
    assert "no 'Measured" in student._check()
    assert student.ws_url == "ws://127.0.0.1:1/_stcore/stream"
