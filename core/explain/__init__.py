"""Explanations and their measures: attribution methods, agreement, faithfulness, sanity checks."""
