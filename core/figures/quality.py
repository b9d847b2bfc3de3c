"""The Explanation quality page's table and its answer in words, from core.explain.quality.compare.

Every number comes from the comparison table; a change is only called a change when it is larger than
its noise (twice the standard error of the per-probe differences), so a class is not told that maps
got "simpler" by 0.003.
"""
from __future__ import annotations

import pandas as pd

# measure -> (word when it moves the better way, word when it moves the other way)
_WORDS = {
    "sparseness": ("simpler", "less simple"),
    "complexity": ("simpler", "more complex"),
    "sensitivity": ("steadier", "less steady"),
    "deletion_gain": ("more faithful", "less faithful"),
    "insertion_gain": ("more faithful", "less faithful"),
    "completeness": ("more complete", "less complete"),
}
_MEANING = {
    "sparseness": "1 = one pixel holds the whole map, 0 = every pixel counts the same",
    "complexity": "0 = one pixel, the log of the number of pixels = a flat map",
    "sensitivity": "the largest change of the map when the image is nudged, as a share of the map's size",
    "deletion_gain": "how much faster the class probability falls when the map's top pixels go first (0 = chance)",
    "insertion_gain": "how much faster it comes back when they are restored first (0 = chance)",
    "completeness": "Integrated Gradients should add up to the change of the class score (0 = exactly)",
}


def number(value: float) -> str:
    """A measure as the page writes it: two decimals, three below 0.1 (0.42, 0.053)."""
    return f"{value:.3f}" if abs(value) < 0.1 and value != 0 else f"{value:.2f}"


def reading(row: pd.Series) -> str:
    """"simpler", "less faithful", ... or "no clear change" when |change| is within its noise."""
    if abs(row["change"]) <= row["noise"] or row["change"] == 0:
        return "no clear change"
    up, down = _WORDS[row["measure"]]
    better = row["change"] > 0 if row["better"] == "higher" else row["change"] < 0
    return up if better else down


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison as the page shows it: one row per measure, numbers as text, what each means."""
    return pd.DataFrame({
        "Measure": table["label"],
        "Original": table["original"].map(number),
        "Compressed": table["compressed"].map(number),
        "Change (± noise)": [f"{row.change:+.3f} ± {row.noise:.3f}".replace("-", "−") for row in table.itertuples()],
        "Random map": table["random"].map(number),
        "Better": table["better"],
        "Reading": [reading(row) for _, row in table.iterrows()],
        "What it means": table["measure"].map(_MEANING),
    })


def _part(table: pd.DataFrame, measure: str) -> str:
    row = table.loc[table["measure"] == measure].iloc[0]
    return f"{row['label'].split(' (')[0].lower()} {number(row['original'])} → {number(row['compressed'])}"


def verdict(table: pd.DataFrame) -> str:
    """Two sentences answering "are the compressed model's maps simpler, and still faithful?" from `table`."""
    have = set(table["measure"])
    sentences = []
    simple = [m for m in ("sparseness", "complexity") if m in have]
    if simple:
        readings = {reading(table.loc[table["measure"] == m].iloc[0]) for m in simple}
        word = readings.pop() if len(readings) == 1 else "mixed: the two measures disagree"
        sentences.append(f"Simpler? {', '.join(_part(table, m) for m in simple).capitalize()}: {word}.")
    if "deletion_gain" in have:
        row = table.loc[table["measure"] == "deletion_gain"].iloc[0]
        above = "still above chance (0)" if row["compressed"] > row["noise"] else "no better than chance (0)"
        sentences.append(f"Still faithful? {_part(table, 'deletion_gain').capitalize()}: {reading(row)}, {above}.")
    return " ".join(sentences)


def notes(original: dict, compressed: dict) -> list[str]:
    """Sentences for the flagged probes of `quality.summary` outputs (all-zero maps, unchanged scores)."""
    out = []
    for name, summary in (("original", original), ("compressed", compressed)):
        if summary.get("empty"):
            out.append(f"{summary['empty']} of the {summary['probes']} {name} maps are zero everywhere (the model "
                       "does not react to the image): they count as flat maps (sparseness 0, complexity at its "
                       "maximum) and as steady (max-sensitivity 0).")
        if summary.get("no_change"):
            out.append(f"For {summary['no_change']} of the {summary['probes']} images the {name} model's class score "
                       "is the same for the black image: completeness cannot be judged there and counts as 0.")
    return out
