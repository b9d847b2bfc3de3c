"""Guided lessons: the shipped TOML files parse and make sense, malformed files are reported with
their file and line, every step renders with figures computed for its own settings and types none
itself, and every lesson can be walked through in the app (AppTest) with each step's settings
applied and its page opened.

The walk-throughs render the real pages, except Trade-offs and Forgotten examples: their sweeps
and model populations take minutes for LeNet-5 on mnist5k, so there the test checks the step's
settings and the page switch only (tests/test_url_state.py renders both pages with every one of
their settings, on the small digits set).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import open_app
import streamlit as st
from streamlit.navigation.page import StreamlitPage
from streamlit.testing.v1 import AppTest
from torch import nn

from core import data as datasets
from core import lesson_figures
from core.compression import CompressionConfig, compress
from core.distillation import compare as compare_students
from core.distillation import lesson as distillation_lesson
from core.distillation.coreset import subset_models, subset_total
from core.distillation.knowledge import DistillConfig, distill
from core.explain import quality
from core.lessons import Lesson, LessonError, load_lessons, parse_lesson
from core.studies.sweep_plan import probe_indices
from core.metrics import compression_report
from core.studies.sweep_plan import probe_indices
from core.training import load_or_train
from ui import url_state
from ui.setup import setup_from

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 180
PARSERS = url_state.lesson_parsers()
LESSONS, ERRORS = load_lessons(url_state.LESSONS_DIR, PARSERS)
HEAVY_PAGES = {"tradeoffs", "forgotten"}




# ---------------------------------------------------------------- the shipped lessons
def test_every_shipped_lesson_parses_and_validates():
    assert not ERRORS, [str(e) for e in ERRORS]
    titles = {lesson.title for lesson in LESSONS}
    assert {"Magnitude versus random pruning", "How low can the bits go?", "Pruning with and without fine-tuning",
            "Which digits does a compressed model forget?", "Do explanations survive compression?"} <= titles
    assert [lesson.order for lesson in LESSONS] == sorted(lesson.order for lesson in LESSONS)


def _sentences(text: str) -> int:
    text = re.sub(r"et al\.", "et al", text)  # an abbreviation, not the end of a sentence
    return len(re.findall(r"[.!?](?=\s|$)", text.strip()))


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_every_step_says_what_to_notice_and_opens_a_page(lesson):
    assert len(lesson.steps) >= 3
    for step in lesson.steps:
        assert 2 <= _sentences(step.text) <= 4, (step.title, step.text)
        assert step.settings.get("page") in url_state.page_names(), step.title


# ---------------------------------------------------------------- malformed files: file and line
GOOD = '''title = "A lesson"
summary = "What it is about."

[[steps]]
title = "First"
text = "Look here. Then there."
[steps.set]
page = "overview"
prune = 50
'''


def _error(source: str) -> LessonError:
    with pytest.raises(LessonError) as caught:
        parse_lesson(source, "lessons/bad.toml", PARSERS)
    return caught.value


def test_a_good_lesson_parses():
    lesson = parse_lesson(GOOD, "lessons/good.toml", PARSERS)
    assert lesson == Lesson("good", "A lesson", "What it is about.",
                            (lesson.steps[0],), 100)
    assert dict(lesson.steps[0].settings) == {"page": "overview", "prune": 50}


@pytest.mark.parametrize("source, line, words", [
    (GOOD.replace('prune = 50', 'prune = '), 9, "TOML syntax"),
    (GOOD.replace('text = "Look here. Then there."', 'text = "Look here.'), 6, "TOML syntax"),
    (GOOD.replace("prune = 50", "prunee = 50"), 9, "unknown setting 'prunee'"),
    (GOOD.replace('page = "overview"', 'page = "nowhere"'), 8, "bad value page = 'nowhere'"),
    (GOOD.replace("prune = 50", 'method = "sideways"'), 9, "bad value method = 'sideways'"),
    (GOOD.replace("prune = 50", "prune = 150"), 9, "out of range"),
    (GOOD.replace("prune = 50", "bits = 12"), 9, "out of range"),
    (GOOD.replace("prune = 50", "prune = [50, 60]"), 9, "not a list"),
    (GOOD.replace("prune = 50", 'present = true'), 9, "unknown setting 'present'"),
    (GOOD.replace('text = "Look here. Then there."\n', ""), 4, "step 1: missing 'text'"),
    (GOOD.replace('text = "Look here. Then there."', 'text = "   "'), 6, "non-empty text"),
    (GOOD.replace('text = "Look here. Then there."', 'txt = "Look here."'), 6, "unknown field 'txt'"),
    (GOOD.replace('title = "A lesson"\n', ""), 1, "missing 'title'"),
    (GOOD.replace('summary = "What it is about."', 'summary = "What." \nauthor = "me"'), 3, "unknown field 'author'"),
    (GOOD.split("[[steps]]")[0], 1, "at least one [[steps]]"),
    (GOOD + '\n[[steps]]\ntitle = "Second"\ntext = "Fine. Really."\nset = { bits = 12 }\n', 14, "step 2: bits = 12"),
    (GOOD + '\n[[steps]]\ntitle = "Second"\n', 11, "step 2: missing 'text'"),
    ('title = "A"\nsummary = "B"\n\n[settings]\nmodle = "mlp"\n\n' + GOOD.split("\n", 2)[2], 5,
     "unknown setting 'modle'"),
    (GOOD.replace('"Look here. Then there."', '"""\nLook here.\nIt reads {acuracy}.\n"""'), 8,
     "step 1: unknown placeholder {acuracy} (did you mean {accuracy}?)"),
    (GOOD.replace('"Look here. Then there."', '"Look here. Then {step2.accuracy}."'), 6,
     "step 1: {step2.accuracy} names step 2, but the lesson has 1 steps"),
    (GOOD.replace('"Look here. Then there."', '"Look here. Then {step0.size}."'), 6, "names step 0"),
    (GOOD.replace('title = "First"', 'title = "At {accuracy}"'), 5, "in the title: figures are filled in"),
    (GOOD.replace('summary = "What it is about."', 'summary = "From {accuracy}."'), 2, "in the lesson's summary"),
])
def test_malformed_lessons_name_the_file_and_the_line(source, line, words):
    err = _error(source)
    assert (err.file, err.line) == ("lessons/bad.toml", line), str(err)
    assert str(err).startswith(f"lessons/bad.toml, line {line}: ")
    assert words in str(err)


def test_the_readme_example_is_a_good_lesson():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    lesson = parse_lesson(example, "lessons/readme.toml", PARSERS)
    assert lesson_figures.placeholders(lesson.steps[0].text)


def test_a_bad_file_does_not_hide_the_others(tmp_path):
    folder = tmp_path / "lessons"
    shutil.copytree(url_state.LESSONS_DIR, folder)
    (folder / "broken.toml").write_text(GOOD.replace("prune = 50", "prune = "))
    lessons, errors = load_lessons(folder, PARSERS)
    assert [lesson.name for lesson in lessons] == [lesson.name for lesson in LESSONS]
    assert [str(e) for e in errors] == ["lessons/broken.toml, line 9: TOML syntax: Invalid value"]


# ---------------------------------------------------------------- figures come from the app
def _settings_at(lesson: Lesson, number: int) -> dict[str, object]:
    """Every lesson-settable setting at step `number`, as ui.lessons applies it (defaults for the rest)."""
    step = lesson.steps[number - 1]
    return {key: step.settings.get(key, s.default) for key, s in url_state.SETTINGS.items() if s.lesson}


@pytest.fixture(scope="module")
def step_figures():
    """figures(lesson, number): the placeholder texts from the report of that step's own settings.

    Computed with core functions only (the default LeNet-5 on mnist5k, from the shared model cache),
    for the Setup the sidebar would build (ui.setup.setup_from); one report per distinct setup.
    """
    reports, qualities = {}, {}

    def figures(lesson: Lesson, number: int) -> dict[str, str]:
        setup = setup_from(_settings_at(lesson, number))
        data = datasets.load_dataset(setup.train.dataset)
        model = load_or_train(setup.train, data).model
        if setup not in reports:
            reports[setup] = compression_report(model, compress(model, setup.compression), setup.compression,
                                                data.x_test, data.y_test)
        out = {**lesson_figures.figures(reports[setup]), **distillation_figures(lesson, number, setup)}
        if any(number in lesson_figures.quality_steps_needed(step.text, k)
               for k, step in enumerate(lesson.steps, 1)):  # explanation quality, as the Explanation quality page
            method = _settings_at(lesson, number)["quality_method"]
            if (setup, method) not in qualities:
                probes = data.x_test[torch.as_tensor(probe_indices(data.y_test, 64))]
                target = model(probes).argmax(1)
                measured = [quality.measure(m, probes, target, method,
                                            sensitivity_images=quality.sensitivity_images_for(method))
                            for m in (model, compress(model, setup.compression))]
                qualities[setup, method] = lesson_figures.quality_figures(quality.compare(*measured))
            out.update(qualities[setup, method])
        return out
    return figures


def distillation_figures(lesson: Lesson, number: int, setup) -> dict[str, str]:
    """The Distillation page's placeholders of a step, computed with core functions for the step's settings
    (the page's comparison: the distilled student also compressed with the step's sidebar setting)."""
    settings = _settings_at(lesson, number)
    names = {name for at, step in enumerate(lesson.steps, 1) for name in lesson_figures.names_needed(step.text, at, number)}
    kinds = distillation_lesson.needs(names)
    if not kinds:
        return {}
    data = datasets.load_dataset(setup.train.dataset)
    teacher = load_or_train(setup.train, data).model
    probe = probe_indices(data.y_test, compare_students.PROBE_SIZE)
    found = {}
    if "knowledge" in kinds:
        cfg = DistillConfig(teacher=setup.train, model=settings["distill_student"],
                            temperature=float(settings["distill_t"]), alpha=float(settings["distill_alpha"]))
        result = distill(cfg, teacher, data)
        table = compare_students.compare(teacher, {"distilled": ("d", result.distilled),
                                                   "label_only": ("l", result.label_only)}, data,
                                         settings["distill_method"], probe, probe[:1], setup.compression).table
        found.update(distillation_lesson.knowledge_figures(table, cfg.temperature, cfg.alpha))
    if "data" in kinds:
        fraction = settings["distill_subset"] / 100
        models_ = subset_models(setup.train, teacher, data, fraction)
        table = compare_students.compare(teacher, {k: (k, r.model) for k, r in models_.items()}, data,
                                         settings["distill_method"], probe, probe[:1]).table
        found.update(distillation_lesson.data_figures(table, subset_total(data.y_train.numpy(), fraction)))
    return found


UNIT = r"(?:%|kB|MB|GB|B\b|×|x\b|points?\b|pts\b)"
NUMBER = r"(?<![\w.,])\d+(?:[.,]\d+)*"
LITERAL_FIGURES = [
    re.compile(rf"(?<!top-)({NUMBER})\s*{UNIT}"),                             # 28.9 %, 3.9×, 109.4 kB, 18 points
    re.compile(rf"{NUMBER}\.\d+"),                                            # 0.86, 98.5 (any decimal)
    re.compile(rf"{NUMBER}\s+(?:of the\s+{NUMBER}|(?:test\s+)?(?:images|digits)\b)"),  # 134 of the 1,000, 94 images
]


def literal_figures(text: str, rates: set[object]) -> list[str]:
    """The figures `text` types in itself (placeholders removed); the rule is test_no_step_types_a_figure's."""
    bare = lesson_figures.without_placeholders(text)
    found = []
    for pattern in LITERAL_FIGURES:
        for match in pattern.finditer(bare):
            number = match.group(1) if pattern.groups else None
            if pattern is LITERAL_FIGURES[0] and "%" in match.group(0) and number in {str(r) for r in rates}:
                continue  # the pruning rate the step itself sets
            found.append(match.group(0).strip())
    return found


@pytest.mark.parametrize("text, rates, expected", [
    ("Accuracy falls to **28.9 %**.", {0}, ["28.9 %", "28.9"]),
    ("The model is **3.9× smaller** (109.4 kB).", {0}, ["3.9×", "109.4 kB", "3.9", "109.4"]),
    ("It stays within 1 point up to 70 %.", {0}, ["1 point", "70 %"]),
    ("Rank correlation **0.50**, top-10 % overlap 62 %.", {90}, ["62 %", "0.50"]),
    ("**134 of the 1,000** images, and 94 test images.", {90}, ["134 of the 1,000", "94 test images"]),
    ("Remove 50 % at 2 bits, step 3, 255 levels, s/2, 3-bit, {accuracy} and {step2.size}.", {50}, []),
    ("90 % gone: the 90 %-pruned model, top-10 % overlap.", {90}, []),
])
def test_the_literal_figure_rule(text, rates, expected):
    assert literal_figures(text, rates) == expected


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_no_step_types_a_figure_the_app_computes(lesson):
    """Lesson titles, texts and summaries quote no figure the app computes: those come from placeholders.

    The rule, strict but not silly:
    - a literal figure is a number followed by a unit of something the app measures (%, kB, MB,
      GB, B, ×, x, points, pts), any decimal number (the app's measurements are decimals, its
      settings whole numbers: rank correlation 0.50, SSIM 0.89), or a count of images ("134 of
      the 1,000", "94 test images");
    - allowed are the step's own settings: "N %" where N is the pruning rate the step sets (a
      title "90 % gone" on a step at prune = 90; in a lesson's summary, a rate some step sets),
      and numbers without such a unit: step numbers, bit widths ("2 bits", "3-bit"), levels of a
      code ("255 levels"), epochs, "s/2";
    - "top-10 %" is the name of a measure, not a measurement.
    test_the_literal_figure_rule shows the rule on the figures the lessons used to type in.
    """
    rates = [_settings_at(lesson, number)["prune"] for number in range(1, len(lesson.steps) + 1)]
    assert literal_figures(lesson.summary, set(rates)) == [], lesson.summary
    for number, step in enumerate(lesson.steps, 1):
        assert literal_figures(step.title, {rates[number - 1]}) == [], (number, step.title)
        assert literal_figures(step.text, {rates[number - 1]}) == [], (number, step.text)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_every_step_renders_with_figures_from_its_own_settings(step_figures, lesson):
    for number, step in enumerate(lesson.steps, 1):
        needed = lesson_figures.steps_needed(step.text, number)
        figures = {n: step_figures(lesson, n) for n in needed}
        text = lesson_figures.fill(step.text, figures, number)
        assert not lesson_figures.placeholders(text) and "{" not in text, (number, text)
        for placeholder in lesson_figures.placeholders(step.text):
            value = figures[placeholder.step or number][placeholder.name]
            assert value and value in text and "n/a" not in value, (number, placeholder)
    assert any(lesson_figures.placeholders(step.text) for step in lesson.steps)  # every lesson quotes the app


def _tiny_report():
    """Linear(2, 4) on five 1×2 images; the compressed copy loses weight [1, 1] (class 1's input).

    Original predictions 0, 1, 2, 0, 1 (labels 0, 1, 2, 1, 0: 3 right); compressed 0, 0, 1, 0, 0
    (2 right, 3 answers changed). Per class: 0 goes 50 -> 100 %, 1 goes 50 -> 0 %, 2 goes 100 -> 0 %
    (the worst), 3 has no image. Weights: 6 of 8 zero before, 7 after; sizes 384 bits dense and
    163 bits compressed (one nonzero as a 35-bit sparse position + value, four 32-bit biases).
    """
    original = nn.Sequential(nn.Flatten(), nn.Linear(2, 4))
    with torch.no_grad():
        original[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]))
        original[1].bias.copy_(torch.tensor([0.0, 0.0, 0.0, -10.0]))
    compressed = nn.Sequential(nn.Flatten(), nn.Linear(2, 4))
    compressed.load_state_dict(original.state_dict())
    with torch.no_grad():
        compressed[1].weight[1, 1] = 0.0
    x = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-1.0, -1.0], [3.0, 1.0], [0.0, 5.0]]).reshape(5, 1, 1, 2)
    y = torch.tensor([0, 1, 2, 1, 0])
    return compression_report(original.eval(), compressed.eval(), CompressionConfig(), x, y)


def test_figures_of_a_hand_computed_report():
    assert lesson_figures.figures(_tiny_report()) == {
        "accuracy": "40.0 %", "accuracy_original": "60.0 %", "accuracy_change": "\u221220.0 points",
        "agreement": "40 %", "disagreements": "3", "test_images": "5", "sparsity": "88 %",
        "size": "20 B", "size_original": "48 B", "ratio": "2.4×",
        "first_layer": "fc 1", "first_layer_sparsity": "88 %", "largest_layer": "fc 1",
        "largest_layer_sparsity": "88 %", "lowest_layer_sparsity": "88 %", "highest_layer_sparsity": "88 %",
        "worst_class": "2", "worst_class_accuracy": "0 %", "worst_class_accuracy_original": "100 %",
        "weights": "8", "weights_original": "8", "macs": "1", "macs_original": "8", "speedup": "8.0×",
        "lowrank": "off", "first_layer_rank": "all 2 (dense)", "largest_layer_rank": "all 2 (dense)",
    }
    assert set(lesson_figures.figures(_tiny_report())) == set(lesson_figures.PLACEHOLDERS)


def test_fill_takes_own_and_other_steps_figures_and_leaves_other_braces():
    text = "Now {accuracy}, before {step1.accuracy}; the set {−s, 0, s} and {not a placeholder}."
    assert lesson_figures.steps_needed(text, 3) == {1, 3}
    filled = lesson_figures.fill(text, {1: {"accuracy": "98.0 %"}, 3: {"accuracy": "30.1 %"}}, 3)
    assert filled == "Now 30.1 %, before 98.0 %; the set {−s, 0, s} and {not a placeholder}."


@pytest.mark.parametrize("key", sorted(set(url_state.SIDEBAR) - {"dataset", "model"}))
def test_every_compression_setting_reaches_the_lesson_figures(key):
    """A lesson step's figures are computed for what the sidebar would set: every compression
    control changes the Setup (a new control that setup_from ignores would fail here)."""
    defaults = {k: s.default for k, s in url_state.SIDEBAR.items()}
    setting = url_state.SIDEBAR[key]
    def readable(raw: str) -> bool:
        try:
            setting.parse(raw)
        except ValueError:
            return False
        return True

    # a rate in percent, a share such as rank=0.5, or a text such as a per-layer plan
    numbers = (setting.parse(raw) for raw in ("50", "0.5", "fc1:b4") if readable(raw))
    other = next(o for o in (setting.options or numbers) if o != setting.default)
    assert setup_from({**defaults, key: other}) != setup_from(defaults)


# ---------------------------------------------------------------- in the app


def healthy(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture
def light_heavy_pages(monkeypatch):
    """Trade-offs and Forgotten examples draw only their title here (see the module docstring)."""
    run = StreamlitPage.run

    def light_run(self):
        if self._url_path not in HEAVY_PAGES:  # (url_path is "" for the default page)
            return run(self)
        self._can_be_called = False
        st.title(self.title)

    monkeypatch.setattr(StreamlitPage, "run", light_run)


def assert_at_step(at: AppTest, lesson: Lesson, number: int) -> None:
    """Step `number` is shown, its settings (and defaults for the rest) are applied and in the link."""
    healthy(at)
    assert f"step {number} of {len(lesson.steps)}" in " ".join(c.value for c in at.caption)
    assert lesson.steps[number - 1].title in [s.value for s in at.subheader]
    settings = lesson.steps[number - 1].settings
    assert at.query_params["page"] == settings["page"]
    assert (at.query_params["lesson"], at.session_state["step"]) == (lesson.name, number)
    for key, setting in url_state.SETTINGS.items():
        if not setting.lesson or key == "page":
            continue
        expected = settings.get(key, setting.default)
        actual = at.session_state[key] if key in at.session_state else None
        if key == "sparsity_layer" and expected is None:
            continue  # no fixed default: the Sparsity page picks the first layer
        assert actual == expected, (number, key)
        # Page settings at their default, and an empty text (no per-layer plan), are left out of the link.
        if (key in url_state.SIDEBAR and expected != "") or expected != setting.default:
            assert at.query_params[key] == url_state.to_text(expected), (number, key)
        else:
            assert key not in at.query_params, (number, key)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_walk_through_every_lesson(light_heavy_pages, lesson):
    at = open_app("lessons", prune=33)  # a student's own setting, replaced by the lesson's
    healthy(at)
    at.button(key=f"start_{lesson.name}").click().run()
    assert_at_step(at, lesson, 1)
    for number in range(2, len(lesson.steps) + 1):
        at.button(key="lesson_next").click().run()
        assert_at_step(at, lesson, number)
    at.button(key="lesson_back").click().run()
    assert_at_step(at, lesson, len(lesson.steps) - 1)
    at.button(key="lesson_next").click().run()
    at.button(key="lesson_next").click().run()  # "Finish" on the last step: back to the list
    healthy(at)
    assert at.query_params["page"] == "lessons" and "lesson" not in at.query_params


def test_a_link_opens_a_lesson_step(light_heavy_pages):
    lesson = next(lesson for lesson in LESSONS if lesson.name == "magnitude-vs-random")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["lesson"], at.query_params["step"] = lesson.name, "3"
    at.run()
    assert_at_step(at, lesson, 3)  # no page and no settings in the link: the step's own
    at = open_app("weights", lesson=lesson.name, step=3, prune=20)
    healthy(at)
    assert at.query_params["page"] == "weights" and at.session_state["prune"] == 20  # the link's own win
    assert at.session_state["method"] == "random"  # the rest from the step


def test_a_lesson_step_shows_the_figures_of_its_report(step_figures):
    """Step 2 of the first lesson (50 % magnitude pruning, Overview): the accuracy in its text is the
    report's, the same as the metric card's; after a slider move the text keeps the step's figure."""
    lesson = next(lesson for lesson in LESSONS if lesson.name == "magnitude-vs-random")
    at = open_app("lessons")
    at.button(key="start_magnitude-vs-random").click().run()
    at.button(key="lesson_next").click().run()
    assert_at_step(at, lesson, 2)
    expected = step_figures(lesson, 2)
    text = next(m.value for m in at.markdown if "Accuracy goes from" in m.value)
    card = next(m.value for m in at.metric if m.label == "Test accuracy")
    assert card == expected["accuracy"] and f"**{expected['accuracy']}**" in text
    assert f"same answer on {expected['agreement']} of the test images" in text
    assert not any("moved the controls" in c.value for c in at.caption)
    at.slider(key="prune").set_value(95).run()
    healthy(at)
    text = next(m.value for m in at.markdown if "Accuracy goes from" in m.value)
    assert f"**{expected['accuracy']}**" in text  # the step's own settings, not the sidebar's
    assert next(m.value for m in at.metric if m.label == "Test accuracy") != card
    assert any("moved the controls" in c.value for c in at.caption)


def test_a_lesson_step_shows_the_explanation_quality_of_its_settings(step_figures):
    """Step 1 of "Is a smaller model easier to explain?": the sparseness figures in its text are the ones the
    Explanation quality page measures for the step's settings (the page's table shows the same numbers)."""
    lesson = next(lesson for lesson in LESSONS if lesson.name == "smaller-easier-to-explain")
    at = open_app("lessons")
    at.button(key="start_smaller-easier-to-explain").click().run()
    assert_at_step(at, lesson, 1)
    expected = step_figures(lesson, 1)
    text = next(m.value for m in at.markdown if "sparseness (1 = one pixel" in m.value)
    assert f"from {expected['sparseness_original']} for the original to {expected['sparseness']}" in text
    (table,) = at.dataframe
    row = table.value.set_index("Measure").loc["Sparseness (Gini index of |map|)"]
    assert (row["Original"], row["Compressed"]) == (expected["sparseness_original"], expected["sparseness"])


def test_leaving_a_lesson_keeps_the_settings():
    at = open_app("lessons")
    at.button(key="start_how-low-can-the-bits-go").click().run()
    at.button(key="lesson_leave").click().run()
    healthy(at)
    assert "lesson" not in at.query_params
    assert at.session_state["lesson"] is None and at.session_state["bits"] == 8
    assert "lesson_next" not in [b.key for b in at.button]


def test_a_malformed_lesson_file_is_named_and_the_others_still_work(monkeypatch, tmp_path):
    folder = tmp_path / "lessons"
    shutil.copytree(url_state.LESSONS_DIR, folder)
    (folder / "broken.toml").write_text(GOOD.replace("prune = 50", "prunee = 50"))
    monkeypatch.setattr(url_state, "LESSONS_DIR", folder)
    at = open_app("lessons")
    assert not at.exception
    (error,) = [e.value for e in at.error]
    assert "lessons/broken.toml, line 9: step 1: unknown setting 'prunee' (did you mean 'prune'?)" in error
    assert [s.value for s in at.subheader] == [lesson.title for lesson in LESSONS]
    at.button(key="start_how-low-can-the-bits-go").click().run()
    assert at.session_state["bits"] == 8 and at.query_params["lesson"] == "how-low-can-the-bits-go"


def test_a_link_to_a_broken_lesson_gives_a_notice(monkeypatch, tmp_path):
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "broken.toml").write_text(GOOD.replace("prune = 50", "prune = 150"))
    monkeypatch.setattr(url_state, "LESSONS_DIR", folder)
    at = open_app(lesson="broken", step=1)
    assert not at.exception
    assert any("lessons/broken.toml, line 9: step 1: prune = 150 is out of range" in w.value for w in at.warning)
    assert at.session_state["lesson"] is None and "lesson" not in at.query_params
