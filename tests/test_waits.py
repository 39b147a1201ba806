"""Waits are measured on the machine and said honestly: no prose promises a time."""

import re
from pathlib import Path


def test_no_page_promises_a_time():
    """Waits are measured on the machine (progress bars, estimates), never promised in prose."""
    root = Path(__file__).resolve().parents[1]
    promises = re.compile(r"about \d+ (s|seconds?|min|minutes?)\b")
    sources = [*root.glob("convcov_app/**/*.py"), *root.glob("convcov_core/cli/*.py")]
    assert [str(p.relative_to(root)) for p in sources if promises.search(p.read_text())] == []


def test_the_load_note_speaks_only_when_the_machine_is_busy(monkeypatch):
    from convcov_app import support
    monkeypatch.setattr(support.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(support.os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    assert support.load_note() == ""
    monkeypatch.setattr(support.os, "getloadavg", lambda: (7.25, 1.0, 1.0))
    assert support.load_note() == (" This server is busy now (load 7.2 on 2 cores): training takes longer than "
                                   "on a free machine.")
