"""A stored sweep's results on the Sweeps page: the effect of a scheme per cell as a heatmap and against
one axis, every cell's effect in a table with the CSV downloads, and one cell's runs."""

from __future__ import annotations

import streamlit as st

from convcov_core import sweep
from convcov_core.plots import sweep as figures

from . import lab, sweeps
from .store import run_store, stored_run
from .support import CHART, choose, curve_charts

TITLES = sweeps.AXIS_TITLES
NONE = "none"


def fixed_values(columns, grid: sweep.Sweep, effects, used, prefix: str) -> dict:
    """A selectbox per axis the figure does not draw: its value for the figure."""
    fixed = {}
    for n, axis in enumerate(sweeps.fixed_axes(grid, used)):
        values = list(dict.fromkeys(effects[axis]))
        fixed[axis] = choose(columns[n % len(columns)], TITLES.get(axis, axis), values, values[0],
                             key=f"{prefix}_{axis}")
    return fixed


def axis_choice(where, label: str, axes: list, default, key: str, optional: bool = False):
    """A selectbox of axis titles; the axis chosen (None for 'none')."""
    by_title = {TITLES.get(a, a): a for a in axes}
    options = ([NONE] if optional else []) + list(by_title)
    picked = choose(where, label, options, TITLES.get(default, default) if default else NONE, key)
    return by_title.get(picked)


def heatmap(grid: sweep.Sweep, effects, scheme: str) -> None:
    st.subheader("Effect per cell")
    st.caption(f"Colour and numbers: {scheme} − {grid.reference} in test accuracy points, the mean over seeds "
               "paired by seed with its 95% interval below it (the colour shows the mean alone: read it with "
               "the interval); ★ marks a cell whose interval excludes 0 (hover names the winner). Blank: no "
               "paired seeds yet." + sweeps.map_caption(effects))
    axes, defaults = list(grid.axes), sweeps.figure_axes(grid)
    columns = st.columns(4)
    x = axis_choice(columns[0], "Columns", axes, defaults["x"], "sweep_heat_x")
    y = axis_choice(columns[1], "Rows", [a for a in axes if a != x], defaults["y"], "sweep_heat_y", optional=True)
    fixed = fixed_values(columns[2:], grid, effects, (x, y), "sweep_heat_fix")
    st.plotly_chart(figures.effect_heatmap(sweeps.slice_rows(effects, scheme, fixed), x, y, titles=TITLES),
                    **CHART, key="sweep_heatmap")


def lines(grid: sweep.Sweep, effects, scheme: str) -> None:
    st.subheader("Effect against one axis")
    axes, defaults = list(grid.axes), sweeps.figure_axes(grid)
    columns = st.columns(4)
    x = axis_choice(columns[0], "Against", axes, defaults["against"], "sweep_line_x")
    line = axis_choice(columns[1], "One line per", [a for a in axes if a != x], defaults["lines"],
                       "sweep_line_lines", optional=True)
    panel = axis_choice(columns[2], "Panels per", [a for a in axes if a not in (x, line)], defaults["panels"],
                        "sweep_line_panels", optional=True)
    fixed = fixed_values(columns[3:], grid, effects, (x, line, panel), "sweep_line_fix")
    st.plotly_chart(figures.effect_lines(sweeps.slice_rows(effects, scheme, fixed), x, line, panel, titles=TITLES),
                    **CHART, key="sweep_lines")


def cell_runs(grid: sweep.Sweep, table, effects) -> None:
    """One cell's trials: its effect with the power note, test accuracy per seed and scheme, and
    their training curves."""
    st.subheader("One cell's runs")
    cells = {sweeps.cell_text(grid, cell): cell for cell in grid.cells()}
    cell = cells[choose(st, "Cell", list(cells), next(iter(cells)), "sweep_cell")]
    for note in sweeps.cell_notes(effects, grid, cell):
        st.markdown(note)
    seeds = sweeps.seed_table(grid, table, cell)
    st.dataframe(seeds, hide_index=True, key="sweep_seed_table",
                 column_config={c: st.column_config.NumberColumn(format="%.2f") for c in seeds.columns[1:]})
    runs = [stored_run(str(run_store().path), run_id) for run_id in sweeps.cell_run_ids(grid, table, cell)]
    curve_charts(lab.curves_from_runs(runs), key="sweep_cell")


def results(grid: sweep.Sweep, table) -> None:
    """The effects of a stored sweep with finished trials."""
    effects = sweep.cell_effects(grid, table)
    shown = sweeps.readable(effects, grid)
    schemes = grid.inits[1:]
    scheme = choose(st, f"Scheme (against {grid.reference})", schemes, schemes[0], "sweep_scheme") \
        if len(schemes) > 1 else schemes[0]
    if grid.axes:
        heatmap(grid, shown, scheme)
        lines(grid, shown, scheme)
    st.subheader("Every cell")
    st.dataframe(sweeps.effect_rows(effects, grid), hide_index=True, key="sweep_effects")
    st.caption(sweeps.table_caption(effects))
    left, right, _ = st.columns([1, 1, 4])
    left.download_button("Effects (CSV)", effects.to_csv(index=False), file_name=f"{grid.name}.effects.csv",
                         mime="text/csv", key="sweep_effects_csv")
    right.download_button("Trials (CSV)", table.to_csv(index=False), file_name=f"{grid.name}.csv",
                          mime="text/csv", key="sweep_trials_csv")
    cell_runs(grid, table, effects)
