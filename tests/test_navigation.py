"""The page list app.py builds from pages/: order, titles, summaries, and a page edited while the
server runs (the summaries are read once per version of a file)."""

import os

from convcov_app.navigation import discover_pages


def test_pages_are_listed_in_order_with_their_docstrings_first_line(tmp_path):
    (tmp_path / "2_Second_Page.py").write_text('"""Second.\n\nMore."""\n')
    (tmp_path / "1_First_Page.py").write_text("x = 1\n")
    entries = discover_pages(tmp_path)
    assert [(e.title, e.url_path, e.summary) for e in entries] == [("First Page", "First_Page", ""),
                                                                   ("Second Page", "Second_Page", "Second.")]


def test_an_edited_page_shows_its_new_summary(tmp_path):
    page = tmp_path / "1_Page.py"
    page.write_text('"""Before."""\n')
    assert discover_pages(tmp_path)[0].summary == "Before."
    page.write_text('"""After."""\n')
    stat = page.stat()
    os.utime(page, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert discover_pages(tmp_path)[0].summary == "After."


def test_the_apps_pages_all_have_a_summary():
    entries = discover_pages()
    assert len(entries) == 8 and all(e.summary for e in entries)
