"""Guided lessons: TOML files a teacher can write, parsed and checked before a class sees them.

A lesson file looks like this (every step starts from the lesson's `[settings]`, then its own
`[steps.set]`; whatever neither names stays at the app's default, so a step always shows the
same thing, whatever the student clicked before):

    title = "Magnitude versus random pruning"
    summary = "Remove the same share of weights two ways."
    order = 1                       # optional: position in the list of lessons

    [settings]                      # optional: applied to every step
    model = "lenet5"

    [[steps]]
    title = "The dense model"
    text = "Two to four sentences: what to notice. It reads {accuracy} of the test images."
    [steps.set]
    page = "overview"
    prune = 0

Measured numbers are never typed into a text: placeholders such as `{accuracy}` or
`{step1.accuracy}` are filled when the step is shown (core.lesson_figures); an unknown one is an
error like any other.

Which settings exist and which values they take is not decided here: the caller passes a
mapping from setting name to a parser (the app's URL parsers), so lessons accept exactly what a
link accepts. Every problem raises `LessonError` naming the file and the line.
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path

from core import lesson_figures

# name -> parser of the setting's URL text; raises ValueError for unusable text, may clamp.
Parsers = Mapping[str, Callable[[str], object]]

LESSON_FIELDS = {"title", "summary", "order", "settings", "steps"}
STEP_FIELDS = {"title", "text", "set"}


class LessonError(ValueError):
    """A lesson file that cannot be used; str() reads "lessons/x.toml, line 7: what is wrong"."""

    def __init__(self, file: str, line: int, problem: str):
        super().__init__(f"{file}, line {line}: {problem}")
        self.file, self.line, self.problem = file, line, problem


@dataclass(frozen=True)
class Step:
    """One step: its title, what to notice (markdown), and every setting it makes (merged)."""

    title: str
    text: str
    settings: Mapping[str, object]


@dataclass(frozen=True)
class Lesson:
    """A parsed, checked lesson; `name` is the file's stem (the value of ?lesson= in links)."""

    name: str
    title: str
    summary: str
    steps: tuple[Step, ...]
    order: int = 100


# ------------------------------------------------------------------ finding lines
_HEADER = re.compile(r"^\s*\[")
_STEP_HEADER = re.compile(r"^\s*\[\[\s*steps\s*\]\]")


def _block(lines: list[str], start: int, inside: Callable[[str], bool]) -> range:
    """Line indices from the header at `start` up to the next header that does not belong to it."""
    end = start + 1
    while end < len(lines) and not (_HEADER.match(lines[end]) and not inside(lines[end])):
        end += 1
    return range(start, end)


def _step_block(lines: list[str], step: int) -> range:
    """The lines of the step-th `[[steps]]` table (with its [steps.set]); the whole file if absent."""
    headers = [i for i, line in enumerate(lines) if _STEP_HEADER.match(line)]
    if step >= len(headers):  # steps written some other way (inline array): search everywhere
        return range(len(lines))
    return _block(lines, headers[step], lambda line: re.match(r"^\s*\[\s*steps\.", line) is not None)


def _table_block(lines: list[str], table: str) -> range:
    """The lines of `[table]`; the whole file when it has no such header (inline or dotted)."""
    for i, line in enumerate(lines):
        if re.match(rf"^\s*\[\s*{re.escape(table)}\s*\]", line):
            return _block(lines, i, lambda _: False)
    return range(len(lines))


def _line_of(lines: list[str], key: str, within: range) -> int:
    """1-based line where `key = ...` is written inside `within` (else the block's first line)."""
    pattern = re.compile(rf"(^|[{{,\s]){re.escape(key)}\s*=|(^|[{{,\s])\"{re.escape(key)}\"\s*=")
    for i in within:
        if pattern.search(lines[i].split("#")[0]):
            return i + 1
    return (within.start if len(within) else 0) + 1


# ------------------------------------------------------------------ checking
def _text(raw: dict, key: str, fail: Callable[[str, str], LessonError]) -> str:
    value = raw.get(key)
    if value is None:
        raise fail(key, f"missing {key!r}")
    if not isinstance(value, str) or not value.strip():
        raise fail(key, f"{key!r} must be a non-empty text")
    return value.strip()


def _as_url_text(value: object) -> str:
    """A TOML value as the text a link would carry."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ValueError("must be a single number or text, not a list or table")


def _settings(table: object, parsers: Parsers, fail: Callable[[str, str], LessonError], where: str) -> dict:
    """Check one table of settings: known names, usable values, nothing clamped."""
    if not isinstance(table, dict):
        raise fail(where, f"{where!r} must be a table of settings")
    checked = {}
    for key, value in table.items():
        if key not in parsers:
            close = get_close_matches(key, list(parsers), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(parsers))}"
            raise fail(key, f"unknown setting {key!r} ({hint})")
        try:
            parsed = parsers[key](_as_url_text(value))
        except (ValueError, OverflowError) as err:
            raise fail(key, f"bad value {key} = {value!r} (expected {err})") from None
        if parsed != value and str(parsed) != str(value):  # a link would be clamped: a lesson is told
            raise fail(key, f"{key} = {value!r} is out of range (nearest allowed: {parsed!r})")
        checked[key] = parsed
    return checked


def parse_lesson(source: str, file: str, parsers: Parsers) -> Lesson:
    """Parse and check one lesson's TOML text; `file` names it in errors (its stem names the lesson).

    Raises LessonError (file, 1-based line, problem) for TOML syntax errors, missing or unknown
    fields, unknown settings and values the parsers refuse or would clamp.
    """
    lines = source.splitlines() or [""]
    try:
        raw = tomllib.loads(source)
    except tomllib.TOMLDecodeError as err:  # Python 3.11 keeps the position only in the message
        found = re.search(r"at line (\d+)", str(err))
        line = int(found.group(1)) if found else len(lines)  # "at end of document"
        raise LessonError(file, line, f"TOML syntax: {re.sub(r' [(]at .*[)]$', '', str(err))}") from None

    def top(key: str, problem: str) -> LessonError:
        return LessonError(file, _line_of(lines, key, range(len(lines))) if key in raw else 1, problem)

    for key in raw.keys() - LESSON_FIELDS:
        raise top(key, f"unknown field {key!r} (known: {', '.join(sorted(LESSON_FIELDS))})")
    title, summary = _text(raw, "title", top), _text(raw, "summary", top)
    for key, value in (("title", title), ("summary", summary)):
        for placeholder in lesson_figures.placeholders(value):
            raise top(key, f"{placeholder.token} in the lesson's {key}: figures are filled in a step's text only")
    order = raw.get("order", 100)
    if not isinstance(order, int) or isinstance(order, bool):
        raise top("order", "'order' must be a whole number")
    base_lines = _table_block(lines, "settings")
    base = _settings(raw.get("settings", {}), parsers,
                     lambda key, problem: LessonError(file, _line_of(lines, key, base_lines), problem), "settings")
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
        raise top("steps", "a lesson needs at least one [[steps]] table")
    return Lesson(Path(file).stem, title, summary,
                  tuple(_step(step, i, lines, file, parsers, base, len(steps)) for i, step in enumerate(steps)), order)


def _step(raw: dict, index: int, lines: list[str], file: str, parsers: Parsers, base: dict, count: int) -> Step:
    block = _step_block(lines, index)

    def fail(key: str, problem: str) -> LessonError:
        named = key in raw or (isinstance(raw.get("set"), dict) and key in raw["set"])
        line = _line_of(lines, key, block) if named else block.start + 1
        return LessonError(file, line, f"step {index + 1}: {problem}")

    for key in raw.keys() - STEP_FIELDS:
        raise fail(key, f"unknown field {key!r} (known: {', '.join(sorted(STEP_FIELDS))})")
    title, text = _text(raw, "title", fail), _text(raw, "text", fail)
    for field, value in (("title", title), ("text", text)):
        for placeholder in lesson_figures.placeholders(value):
            wrong = lesson_figures.problem(placeholder, count)
            if wrong is None and field == "title":
                wrong = f"{placeholder.token} in the title: figures are filled in a step's text only"
            if wrong:
                line = next((i + 1 for i in block if placeholder.token in lines[i]), block.start + 1)
                raise LessonError(file, line, f"step {index + 1}: {wrong}")
    return Step(title, text, {**base, **_settings(raw.get("set", {}), parsers, fail, "set")})


def load_lessons(folder: Path, parsers: Parsers) -> tuple[list[Lesson], list[LessonError]]:
    """Every `*.toml` lesson in `folder`: the good ones (by order, then title) and one error per bad file.

    A bad file never hides the others. Files are named relative to the folder's parent
    (lessons/x.toml), as a teacher sees them in the project.
    """
    lessons, errors = [], []
    for path in sorted(Path(folder).glob("*.toml")):
        shown = str(path.relative_to(Path(folder).parent)) if path.is_absolute() else str(path)
        try:
            lessons.append(parse_lesson(path.read_text(encoding="utf-8"), shown, parsers))
        except LessonError as err:
            errors.append(err)
        except (OSError, UnicodeDecodeError) as err:
            errors.append(LessonError(shown, 1, f"cannot read the file ({err})"))
    return sorted(lessons, key=lambda lesson: (lesson.order, lesson.title)), errors
