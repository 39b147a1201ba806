"""The app's pages (convcov_app.navigation): order, titles, URL paths, summaries, a page edited while the
server runs (the summaries are read once per version of a file), and the app's navigation in AppTest."""

import os

from convcov_app.navigation import discover_pages
from helpers.pages import run_page

#: The URL paths of the pages: links and bookmarks to them must keep working.
URL_PATHS = ["Covariance_Explorer", "Filter_Gallery", "Training_Lab", "Learned_Covariances", "Feature_Ansatz",
             "Frequency_View", "Paper_Claims", "Sweeps"]


def test_numbered_pages_are_listed_in_order_with_their_docstrings_first_line(tmp_path):
    (tmp_path / "10_Tenth_Page.py").write_text('"""Tenth."""\n')
    (tmp_path / "2_Second_Page.py").write_text('"""Second.\n\nMore."""\n')
    (tmp_path / "1_First_Page.py").write_text("x = 1\n")
    (tmp_path / "home.py").write_text('"""Home is not numbered: the navigation puts it first itself."""\n')
    entries = discover_pages(tmp_path)
    assert [(e.title, e.url_path, e.summary) for e in entries] == [("First Page", "First_Page", ""),
                                                                   ("Second Page", "Second_Page", "Second."),
                                                                   ("Tenth Page", "Tenth_Page", "Tenth.")]


def test_an_edited_page_shows_its_new_summary(tmp_path):
    page = tmp_path / "1_Page.py"
    page.write_text('"""Before."""\n')
    assert discover_pages(tmp_path)[0].summary == "Before."
    page.write_text('"""After."""\n')
    stat = page.stat()
    os.utime(page, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert discover_pages(tmp_path)[0].summary == "After."


def test_the_apps_pages_keep_their_url_paths_and_all_have_a_summary():
    entries = discover_pages()
    assert [e.url_path for e in entries] == URL_PATHS and all(e.summary for e in entries)


def test_the_app_opens_on_home_and_switches_to_a_page():
    at = run_page("app.py")
    assert at.title[0].value == "convcov"
    at.switch_page("convcov_app/pages/3_Training_Lab.py").run()
    assert not at.exception and at.title[0].value == "Training Lab"
