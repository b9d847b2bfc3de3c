"""core.studies.ab: a frozen setting in one link word, read back with the app's own parsers."""
from __future__ import annotations

import pytest

from core.studies import ab
from ui.url_state import SIDEBAR

PARSERS = {key: s.parse for key, s in SIDEBAR.items()}
DEFAULTS = {key: s.default for key, s in SIDEBAR.items()}


def test_round_trip_keeps_only_what_differs_from_the_defaults():
    values = {**DEFAULTS, "prune": 50, "method": "random", "bits": 4}
    word = ab.encode(values, DEFAULTS)
    assert word == "prune.50~method.random~bits.4"
    assert ab.decode(word, PARSERS, DEFAULTS) == values
    assert ab.encode(DEFAULTS, DEFAULTS) == "defaults" and ab.decode("defaults", PARSERS, DEFAULTS) == DEFAULTS


def test_values_go_through_the_links_parsers():
    assert ab.decode("prune.155", PARSERS, DEFAULTS)["prune"] == 100  # clamped like ?prune=155
    assert ab.decode("prune.55.5", PARSERS, DEFAULTS)["prune"] == 56  # only the first dot splits
    assert ab.normalize("bits.4~prune.50", PARSERS, DEFAULTS) == "prune.50~bits.4"


@pytest.mark.parametrize("raw, words", [
    ("", "empty"), ("prune", "should look like"), ("prune.", "should look like"),
    ("prunee.50", "unknown setting 'prunee'"), ("prune.50~prune.60", "twice"),
    ("method.best", "A's method 'best' cannot be used"), ("prune.abc", "A's prune 'abc' cannot be used"),
])
def test_bad_words_are_refused_in_words(raw, words):
    with pytest.raises(ValueError, match=words):
        ab.decode(raw, PARSERS, DEFAULTS)
