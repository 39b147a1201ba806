"""Driving the Sweeps page's sidebar in headless Chromium: multiselects, sliders, a tiny grid."""

from __future__ import annotations

from .browser import wait_until_rendered
from .lab_browser import type_number, widget


def pick(page, label: str, values: list) -> None:
    """Make a multiselect hold exactly `values`: remove every chip, then choose each option."""
    box = widget(page, "stMultiSelect", label)
    while box.locator('button[aria-label^="Remove "]').count():
        box.locator('button[aria-label^="Remove "]').first.click()
        wait_until_rendered(page)
    for value in values:
        box.locator("input").click()
        page.get_by_role("option", name=str(value), exact=True).click()
        page.keyboard.press("Escape")
        wait_until_rendered(page)


def slide_to_start(page, label: str) -> None:
    thumb = widget(page, "stSlider", label).get_by_role("slider")
    thumb.focus()
    page.keyboard.press("Home")
    wait_until_rendered(page)


def set_up_tiny_grid(page, steps: int = 20) -> None:
    """ConvMixer-8/1, kernel sizes 3 and 5, trained and frozen filters, 2 seeds, `steps` steps of batch
    16 per trial (20: a few seconds a trial, enough to leave chance accuracy), 2 local workers."""
    pick(page, "Kernel sizes", [3, 5])
    pick(page, "ConvMixer widths", [8])
    pick(page, "Depths", [1])
    type_number(page, "Seeds per cell", 2)
    page.get_by_text("Quick runs and sizes").click()
    type_number(page, "Stop each trial after", steps)
    slide_to_start(page, "Batch size")
    type_number(page, "Worker processes", 2)
