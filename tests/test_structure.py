"""The layout rules of the house style, checked on the source: core/ and models/ stay free of
Streamlit, every cache lives in ui/cache.py, pages stay thin and never touch torch.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE = sorted([*(ROOT / "core").rglob("*.py"), *(ROOT / "models").rglob("*.py")])
PAGES = sorted((ROOT / "pages").glob("*.py"))
UI = sorted((ROOT / "ui").glob("*.py"))
CACHE = ROOT / "ui" / "cache.py"
APP_SOURCES = [ROOT / "app.py", *UI, *PAGES, *PURE]
MAX_PAGE_LINES = 150


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def imported_modules(path: Path) -> set[str]:
    """Top-level package names that `path` imports (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def cache_decorators(path: Path) -> list[str]:
    """Names of the functions in `path` decorated with st.cache_data / st.cache_resource (any spelling)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                if name.startswith("cache"):
                    found.append(node.name)
    return found


def test_the_layout_is_where_the_rules_expect_it():
    assert PURE and PAGES and CACHE.exists()


@pytest.mark.parametrize("path", PURE, ids=_name)
def test_core_and_models_never_import_streamlit(path):
    assert not {"streamlit", "ui", "app"} & imported_modules(path)


def test_importing_core_and_models_loads_no_streamlit():
    # Catches indirect imports too (a core module importing a helper that imports streamlit).
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in PURE]
    modules = [m.removesuffix(".__init__") for m in modules]
    code = (f"import sys\nfor m in {modules!r}: __import__(m)\n"
            "print(sorted(n for n in sys.modules if n.split('.')[0] == 'streamlit'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("path", [p for p in APP_SOURCES if p != CACHE], ids=_name)
def test_no_cache_decorator_outside_ui(path):
    assert cache_decorators(path) == []
    assert "st.cache" not in path.read_text()


def test_every_cache_in_ui_is_bounded():
    tree = ast.parse(CACHE.read_text())
    decorated = cache_decorators(CACHE)
    assert decorated, "ui/cache.py should hold the app's caches"
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in decorated:
            for deco in node.decorator_list:
                assert isinstance(deco, ast.Call), f"{node.name}: give the cache max_entries"
                assert "max_entries" in {k.arg for k in deco.keywords}, node.name


@pytest.mark.parametrize("path", [ROOT / "app.py", *PAGES], ids=_name)
def test_pages_stay_thin_and_torch_free(path):
    assert not {"torch", "torchvision", "captum"} & imported_modules(path)
    assert len(path.read_text().splitlines()) <= MAX_PAGE_LINES


def test_every_page_file_is_routed_by_the_app():
    app = (ROOT / "app.py").read_text()
    assert all(f'"pages/{p.name}"' in app for p in PAGES), [p.name for p in PAGES]


def test_readme_explains_every_registered_compression_control():
    # A new family documents itself: its controls' labels appear in the README's controls section.
    from core.compression import controls

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## What the compression controls mean"):]
    section = section[:section.index("\n## ", 3)].lower()
    missing = [c.label for _, c in controls().values() if c.label.lower() not in section]
    assert not missing, f"README 'What the compression controls mean' does not explain: {missing}"
