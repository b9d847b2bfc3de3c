"""A frozen setting ("A") as one word of a link, to compare with the current one ("B").

`encode` writes the settings that differ from the defaults as `key.value` pairs joined by `~`
(both characters stay as they are in a URL): `prune.50~method.random~bits.4`; all defaults are
`defaults`. `decode` reads such a word with the app's own parsers of each setting (the same
ones a link's ?prune= goes through, so clamping and rounding are the same); anything else raises
ValueError with a message in words. Nothing here knows Streamlit.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

PAIRS, KEY_VALUE = "~", "."
ALL_DEFAULTS = "defaults"
Parsers = Mapping[str, Callable[[str], object]]


def encode(values: Mapping[str, object], defaults: Mapping[str, object]) -> str:
    """The settings of `values` that differ from `defaults`, in the defaults' order, as one link word."""
    pairs = [f"{key}{KEY_VALUE}{values[key]}" for key in defaults if key in values and values[key] != defaults[key]]
    return PAIRS.join(pairs) or ALL_DEFAULTS


def decode(raw: str, parsers: Parsers, defaults: Mapping[str, object]) -> dict[str, object]:
    """Every setting named by `defaults`: the value `raw` gives it (parsed), else its default.

    Raises ValueError, in words, for an empty word, a pair without a value, an unknown or repeated
    setting, or a value its parser refuses.
    """
    values = dict(defaults)
    raw = raw.strip()
    if raw == ALL_DEFAULTS:
        return values
    if not raw:
        raise ValueError("the frozen setting A is empty")
    seen = set()
    for pair in raw.split(PAIRS):
        key, dot, text = pair.partition(KEY_VALUE)
        if not dot or not text:
            raise ValueError(f"{pair!r} should look like prune{KEY_VALUE}50")
        if key not in parsers or key not in defaults:
            raise ValueError(f"A has an unknown setting {key!r} (known: {', '.join(defaults)})")
        if key in seen:
            raise ValueError(f"A names {key} twice")
        seen.add(key)
        try:
            values[key] = parsers[key](text)
        except (ValueError, OverflowError) as err:
            raise ValueError(f"A's {key} {text!r} cannot be used ({err})") from None
    return values


def normalize(raw: str, parsers: Parsers, defaults: Mapping[str, object]) -> str:
    """`raw` decoded and encoded again: the one spelling of the same setting (a link's value, checked)."""
    return encode(decode(raw, parsers, defaults), defaults)
