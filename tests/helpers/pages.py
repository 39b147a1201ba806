"""Run Streamlit pages headless with AppTest and check they render cleanly.

Pattern for a page test (copy it for a new page):

    from helpers.pages import check_widget_extremes, run_page

    def test_my_page_renders():
        at = run_page("convcov_app/pages/3_My_Page.py")
        assert len(at.get("plotly_chart")) >= 1

    def test_my_page_widgets_at_extremes():
        check_widget_extremes("convcov_app/pages/3_My_Page.py")

Conventions this relies on: every widget has a `key=`, and select-type widgets (radio, selectbox,
select_slider, multiselect) offer plain options (strings or numbers, no `format_func` that maps
objects), so a test can pick an option by its displayed text.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from convcov_app.navigation import discover_pages

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 30
POLL_S = 0.5  # seconds between reruns while a background job runs
MAX_POLLS = 400

#: Widget kinds the extremes check moves, with how to find their extreme values.
_RANGE_KINDS = ("slider", "number_input")
_CHOICE_KINDS = ("select_slider", "radio", "selectbox")
_TOGGLE_KINDS = ("checkbox", "toggle")


def page_scripts() -> list[str]:
    """Every page script after Home (convcov_app.navigation.discover_pages), relative to the repository root."""
    return [entry.path.relative_to(ROOT).as_posix() for entry in discover_pages()]


def new_app(script: str, *, timeout: float = TIMEOUT_S) -> AppTest:
    """An AppTest for a script given relative to the repository root (not yet run)."""
    return AppTest.from_file(str(ROOT / script), default_timeout=timeout)


def problems(at: AppTest, *, allow_errors: bool = False) -> list[str]:
    """Exceptions shown on the page, plus st.error messages unless allow_errors."""
    found = [f"exception: {e.value}" for e in at.exception]
    if not allow_errors:
        found += [f"st.error: {e.value}" for e in at.error]
    return found


def assert_clean(at: AppTest, context: str = "default render", *, allow_errors: bool = False) -> None:
    """Fail with every exception (and st.error, unless allowed) the last run showed."""
    found = problems(at, allow_errors=allow_errors)
    assert not found, f"{context}: " + "; ".join(found)


def run_page(script: str, *, timeout: float = TIMEOUT_S) -> AppTest:
    """Run a page once and assert it rendered without an exception or an st.error."""
    at = new_app(script, timeout=timeout).run()
    assert_clean(at)
    return at


def _widgets(at: AppTest, kinds) -> list:
    return [w for kind in kinds for w in at.get(kind)]


def extreme_values(widget) -> list:
    """The values at the ends of a widget's range: min and max, first and last option, every
    option of a radio or selectbox, both states of a checkbox, no and all options of a multiselect."""
    kind = widget.type
    if kind in _RANGE_KINDS:
        return [v for v in (widget.min, widget.max) if v is not None]
    if kind == "select_slider":
        return [widget.options[0], widget.options[-1]]
    if kind in ("radio", "selectbox"):
        return list(widget.options)
    if kind == "multiselect":
        return [[], list(widget.options)]
    if kind in _TOGGLE_KINDS:
        return [False, True]
    return []


def widget_keys(at: AppTest) -> list[tuple[str, str]]:
    """(kind, key) of every enabled input widget on the page; fails on a widget without a key."""
    found = []
    for w in _widgets(at, _RANGE_KINDS + _CHOICE_KINDS + ("multiselect",) + _TOGGLE_KINDS):
        assert w.key, f"{w.type} {w.label!r} has no key=: give it one so tests can address it"
        if not w.disabled:
            found.append((w.type, w.key))
    return found


def _find(at: AppTest, kind: str, key: str):
    matches = [w for w in at.get(kind) if w.key == key]
    return matches[0] if matches else None


def check_widget_extremes(script: str, *, timeout: float = TIMEOUT_S, allow_errors: bool = False,
                          skip: tuple[str, ...] = ()) -> int:
    """Move every widget of the default render, one at a time, to each of its extreme values and
    back; every render must be clean. Buttons are clicked once. Returns the number of renders."""
    at = run_page(script, timeout=timeout)
    renders = 0
    for kind, key in widget_keys(at):
        if key in skip:
            continue
        if _find(at, kind, key) is None:  # hidden by a choice not yet restored: apply the restore
            at.run()
        default = _find(at, kind, key).value
        for value in extreme_values(_find(at, kind, key)):
            _find(at, kind, key).set_value(value)
            at.run()
            renders += 1
            assert_clean(at, f"{kind} {key!r} = {value!r}", allow_errors=allow_errors)
        widget = _find(at, kind, key)
        if widget is not None and not widget.disabled:
            widget.set_value(default)
    for button in at.get("button"):
        if button.key not in skip and not button.disabled:
            button.click()
            at.run()
            renders += 1
            assert_clean(at, f"button {button.key!r} clicked", allow_errors=allow_errors)
    return renders


def check_all_at(script: str, end: str, *, timeout: float = TIMEOUT_S,
                 allow_errors: bool = False) -> AppTest:
    """Set every range and choice widget to its first (end="min") or last (end="max") extreme at
    once and render; the combined extremes (largest kernel, deepest schedule, ...) must be clean."""
    at = run_page(script, timeout=timeout)
    pick = 0 if end == "min" else -1
    for kind, key in widget_keys(at):
        values = extreme_values(_find(at, kind, key))
        if values:
            _find(at, kind, key).set_value(values[pick])
    at.run()
    assert_clean(at, f"every widget at its {end}", allow_errors=allow_errors)
    return at


# ---------------------------------------------------------------------------------------------
# Fuzzing: random interaction sequences
# ---------------------------------------------------------------------------------------------

#: Text a fuzzed text box receives: empty, blank, long, path tricks, markup, non-Latin.
FUZZ_TEXTS = ("", "   ", "x" * 300, "../../etc/passwd", "<b>bold</b> *md*", "名前 ✓", "a/b\\c")


def _fuzz_value(widget, rng):
    """A random value inside what the widget offers (what a browser could send)."""
    kind = widget.type
    if kind == "slider":
        lo, hi, step = widget.min, widget.max, widget.step or 1
        n = int(round((hi - lo) / step))
        value = lo + step * rng.randint(0, n)
        return round(value, 10) if isinstance(lo, float) else int(value)
    if kind == "number_input":
        lo = widget.min if widget.min is not None else -1000
        hi = widget.max if widget.max is not None else 1000
        return rng.choice([lo, hi, lo + (hi - lo) * rng.random() if isinstance(lo, float)
                           else rng.randint(int(lo), int(min(hi, lo + 1000)))])
    if kind in ("select_slider", "radio", "selectbox"):
        return rng.choice(list(widget.options))
    if kind == "multiselect":
        options = list(widget.options)
        return rng.sample(options, rng.randint(0, len(options)))
    if kind in _TOGGLE_KINDS:
        return not widget.value
    if kind == "text_input":
        return rng.choice(FUZZ_TEXTS)
    raise AssertionError(f"no fuzz values for {kind}")


def _fuzz_actions(at: AppTest, skip: tuple[str, ...]) -> list:
    """Every enabled widget the fuzzer may touch: (widget, action) with action 'set' or 'click'."""
    kinds = _RANGE_KINDS + _CHOICE_KINDS + ("multiselect", "text_input") + _TOGGLE_KINDS
    found = [(w, "set") for w in _widgets(at, kinds) if not w.disabled and w.key not in skip]
    found += [(b, "click") for b in at.get("button") if not b.disabled and b.key not in skip]
    found += [(u, "upload") for u in at.get("file_uploader")]
    return found


def unexpected_errors(at: AppTest) -> list[str]:
    """Uncaught exceptions, and bugs that shown_errors() caught and reported as "Unexpected error"."""
    return ([f"exception: {e.value}" for e in at.exception]
            + [f"st.error: {e.value}" for e in at.error if e.value.startswith("Unexpected error")])


def fuzz_page(script: str, *, sequences: int, steps: int, seed: int, uploads: dict[str, bytes],
              skip: tuple[str, ...] = (), fresh_every: int = 10, timeout: float = TIMEOUT_S) -> dict:
    """`sequences` random sequences of `steps` interactions, every choice drawn from
    random.Random(seed), so a failure replays. Each step sets a random widget to a random allowed
    value, clicks a button or uploads one of `uploads` (name -> bytes); widgets in `skip` (long jobs)
    are left alone. A sequence continues from where the previous one left the page; every
    `fresh_every` sequences the page starts again from a new session. Fails on the first uncaught
    exception or "Unexpected error", printing the interactions since the last fresh start.
    Returns counts: sequences, interactions, and renders that showed a (user-facing) st.error."""
    rng = random.Random(seed)
    counts = {"sequences": 0, "interactions": 0, "error_messages": 0}
    for sequence in range(sequences):
        if sequence % fresh_every == 0:
            at = new_app(script, timeout=timeout).run()
            trail = []
            assert not unexpected_errors(at), f"{script}: default render: {unexpected_errors(at)}"
        for _ in range(steps):
            actions = _fuzz_actions(at, skip)
            if not actions:
                break
            widget, action = rng.choice(actions)
            if action == "click":
                trail.append(f"click {widget.key}")
                widget.click()
            elif action == "upload":
                name = rng.choice(sorted(uploads))
                data = uploads[name]
                allowed = list(widget.proto.type)
                if allowed and Path(name).suffix not in allowed:  # the browser only offers these
                    name = Path(name).stem + rng.choice(allowed)
                trail.append(f"upload {name}")
                widget.set_value((name, data, "application/octet-stream"))
            else:
                value = _fuzz_value(widget, rng)
                trail.append(f"{widget.type} {widget.key}={value!r}")
                widget.set_value(value)
            at.run()
            counts["interactions"] += 1
            counts["error_messages"] += bool(at.error)
            found = unexpected_errors(at)
            assert not found, f"{script}, seed {seed}, sequence {sequence}: {' -> '.join(trail)}: {found}"
        counts["sequences"] += 1
    return counts


def poll_until_finished(at) -> list[str]:
    """Rerun the page until its progress bar is gone; return the progress texts seen."""
    texts = []
    for _ in range(MAX_POLLS):
        bars = at.get("progress")
        if not bars:
            return texts
        texts.append(bars[0].proto.text)
        time.sleep(POLL_S)
        at.run()
    raise AssertionError(f"the job did not finish; last progress: {texts[-1:]}")
