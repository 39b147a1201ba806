"""The app's shape, checked in its source: thin pages (at most 200 lines, no top-level statement over 60
lines), session-state and widget keys that start with their page's prefix, no streamlit in convcov_core,
no private Streamlit import anywhere, and no root pages/ folder (Streamlit would serve a first visit
through its folder mode)."""

import ast
from pathlib import Path

import pytest

from convcov_app.navigation import HOME, PAGES_DIR, discover_pages

ROOT = Path(__file__).resolve().parents[1]
MAX_PAGE_LINES = 200
MAX_STATEMENT_LINES = 60
#: Each page's key prefix, and the convcov_app modules that draw widgets for it.
PREFIXES = {"1_Covariance_Explorer.py": ("explorer_", []),
            "2_Filter_Gallery.py": ("gallery_", []),
            "3_Training_Lab.py": ("lab_", ["lab_sidebar.py", "lab_history.py"]),
            "4_Learned_Covariances.py": ("lc_", ["learned_analysis.py", "attention_section.py",
                                                 "pretrained_source.py"]),
            "5_Feature_Ansatz.py": ("fa_", ["ansatz_analysis.py", "rfm_section.py"]),
            "6_Frequency_View.py": ("fv_", []),
            "7_Paper_Claims.py": ("claims_", []),
            "8_Sweeps.py": ("sweep_", ["sweep_sidebar.py", "sweep_results.py"])}
#: Streamlit's public modules (st, AppTest, components); anything else under streamlit is private.
PUBLIC_STREAMLIT = {"streamlit", "streamlit.testing.v1", "streamlit.components.v1"}
#: session_state methods whose first argument is a key.
KEYED_METHODS = {"get", "pop", "setdefault"}
#: convcov_app helpers whose first argument is a session-state key (reset_when_changed also sets the
#: keys of its third argument, a dict(...)).
KEYED_HELPERS = {"reset_when_changed", "read_upload_once"}
PAGES = sorted(PAGES_DIR.glob("*.py"))


def python_files():
    skip = {".venv", ".git", "build", "dist"}
    return [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]


def _is_session_state(node) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "session_state"


def _literal(node) -> str | None:
    """A string key: a constant, or an f-string's leading constant part."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return node.values[0].value
    return None


def keys_in(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, key) of every literal session-state or widget key in a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            found += [(node.lineno, _literal(k.value)) for k in node.keywords if k.arg == "key"]
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if node.args and (name in KEYED_HELPERS or name in KEYED_METHODS and _is_session_state(func.value)):
                found.append((node.lineno, _literal(node.args[0])))
            if name == "reset_when_changed" and len(node.args) > 2 and isinstance(node.args[2], ast.Call):
                found += [(node.lineno, k.arg) for k in node.args[2].keywords]
        elif isinstance(node, ast.Attribute) and _is_session_state(node.value) and node.attr not in (
                KEYED_METHODS | {"update", "keys", "items", "values", "clear"}):
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Subscript) and _is_session_state(node.value):
            found.append((node.lineno, _literal(node.slice)))
        elif isinstance(node, ast.Compare) and any(_is_session_state(c) for c in node.comparators):
            found.append((node.lineno, _literal(node.left)))
    return [(line, key) for line, key in found if key is not None]


def statement_lines(node: ast.stmt) -> int:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return node.end_lineno - first + 1


def test_every_page_has_a_key_prefix_of_its_own():
    assert sorted(PREFIXES) == [entry.path.name for entry in discover_pages()]
    prefixes = [prefix for prefix, _ in PREFIXES.values()]
    assert not [(a, b) for a in prefixes for b in prefixes if a != b and b.startswith(a)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_are_thin(page):
    lines = page.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_PAGE_LINES, f"{page.name}: {len(lines)} lines"
    long = [(node.lineno, statement_lines(node)) for node in ast.parse("\n".join(lines)).body
            if statement_lines(node) > MAX_STATEMENT_LINES]
    assert not long, f"{page.name}: top-level statements (line, lines) over {MAX_STATEMENT_LINES} lines: {long}"


@pytest.mark.parametrize("page", sorted(PREFIXES))
def test_a_pages_keys_start_with_its_prefix(page):
    prefix, modules = PREFIXES[page]
    for path in [PAGES_DIR / page, *(ROOT / "convcov_app" / name for name in modules)]:
        keys = keys_in(ast.parse(path.read_text(encoding="utf-8")))
        assert keys, f"{path.name}: no keys found"
        wrong = [(line, key) for line, key in keys if not key.startswith(prefix)]
        assert not wrong, f"{path.name}: keys without the prefix {prefix!r}: {wrong}"


def test_home_keeps_no_state():
    assert keys_in(ast.parse(HOME.read_text(encoding="utf-8"))) == []


def test_the_key_finder_sees_every_kind_of_key():
    tree = ast.parse('st.slider("a", key="w"); st.session_state.x = 1; st.session_state["y"]; '
                     'st.session_state.get("z"); "v" in st.session_state; reset_when_changed("m", 1, dict(r=2)); '
                     'st.button("b", key=f"u_{n}"); st.session_state.update(q=1)')
    assert sorted(key for _, key in keys_in(tree)) == ["m", "r", "u_", "v", "w", "x", "y", "z"]


def test_the_library_never_imports_streamlit():
    importers = [str(path.relative_to(ROOT)) for path in (ROOT / "convcov_core").rglob("*.py")
                 if any(name == "streamlit" or name.startswith("streamlit.") for name in imported(path))]
    assert importers == []


def test_no_private_streamlit_import():
    private = [(str(path.relative_to(ROOT)), name) for path in python_files() for name in imported(path)
               if (name == "streamlit" or name.startswith("streamlit.")) and name not in PUBLIC_STREAMLIT]
    assert private == []


def imported(path: Path) -> list[str]:
    """Every module a file imports, `from a import b` counted as a.b (b may be a module)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            public = node.module in PUBLIC_STREAMLIT - {"streamlit"}  # names from a public module, not modules
            names += [node.module if public else f"{node.module}.{alias.name}" for alias in node.names]
    return names


def test_no_root_pages_folder():
    assert not (ROOT / "pages").exists(), "pages live in convcov_app/pages/: remove the root pages/ folder"
