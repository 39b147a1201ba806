"""Driving the Training Lab's sidebar in headless Chromium: pick options, type numbers, set up a tiny
comparison, and count the points of the live loss curve."""

from __future__ import annotations

from .browser import wait_until_rendered

#: Points drawn by the "Training loss" chart (all its traces), or -1 when there is no such chart.
LOSS_POINTS = """() => {
    const chart = [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')]
        .find(div => div.layout && div.layout.title
                     && String(div.layout.title.text).includes('Training loss'));
    return chart ? chart.data.reduce((n, trace) => n + (trace.x ? trace.x.length : 0), 0) : -1;
}"""


def widget(page, testid: str, label: str):
    return page.locator(f'[data-testid="{testid}"]').filter(has_text=label).first


def choose(page, label: str, option: str) -> None:
    """Pick an option of a selectbox by typing it."""
    widget(page, "stSelectbox", label).click()
    page.keyboard.type(option)
    page.keyboard.press("Enter")
    wait_until_rendered(page)


def type_number(page, label: str, value: int) -> None:
    field = widget(page, "stNumberInput", label).locator("input")
    field.fill(str(value))
    field.press("Enter")
    wait_until_rendered(page)


def set_up_tiny_run(page, epochs: int = 1) -> None:
    """Noisy bars, a custom ConvMixer (32/4), 5 x 5 filters, 4 x 4 patches, filters trained, 1 seed,
    `epochs` epochs of 15 steps per variant."""
    choose(page, "Dataset", "noisy-bars")
    choose(page, "Model", "custom ConvMixer")
    thumb = widget(page, "stSlider", "Kernel size k").locator('input[type="range"]')
    thumb.focus()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")  # 3 -> 5
    wait_until_rendered(page)
    type_number(page, "Patch size", 4)
    widget(page, "stRadio", "Depthwise filters").get_by_text("trained", exact=True).click()
    wait_until_rendered(page)
    type_number(page, "Seeds", 1)
    if epochs != 1:
        type_number(page, "Epochs", epochs)
