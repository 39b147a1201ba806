"""Learned Covariances answers "is it Gaussian?": the presenter's sentence and table (convcov_app.families)
and the page showing them for the bundled example (AppTest)."""

import pytest

from convcov_app import families
from convcov_app.store import add_bundled_example
from convcov_core import covariance, examples, matrix_files
from convcov_core.family_fits import FamilyFit, LayerFamilies, family_fits
from helpers.pages import assert_clean, new_app, run_page

LEARNED = "convcov_app/pages/4_Learned_Covariances.py"


def layer(n: int, **r: float) -> LayerFamilies:
    """A layer whose families have these r (the rest 0), all with sigma 1."""
    return LayerFamilies(n, tuple(FamilyFit(f, 1.0, r.get(f.replace("-", "_"), 0.0)) for f in covariance.FAMILIES))


@pytest.mark.parametrize("layers, text", [([1], "1"), ([1, 2, 3, 5], "1–3 and 5"), ([4, 2, 7, 8], "2, 4 and 7–8")])
def test_layer_span(layers, text):
    assert families.layer_span(layers) == text


def test_the_answer_counts_the_best_and_says_where_the_gaussian_keeps_up():
    rows = [layer(1, gaussian=0.70, laplace=0.705), layer(2, gaussian=0.6, laplace=0.65),
            layer(3, gaussian=0.5, laplace=0.6), layer(4, gaussian=0.5, rational_quadratic=0.52)]
    assert families.answer(rows) == ("Laplace fits best in 3 of 4 layers and rational quadratic in 1; the Gaussian's "
                                     "r is within 0.01 of the best in layer 1 and behind by 0.02–0.10 in layers 2–4.")
    assert families.answer(rows[2:3]) == ("Laplace fits best in every layer; the Gaussian's r is behind by 0.10 in "
                                          "every layer.")
    assert families.answer([layer(1, gaussian=0.9), layer(2, gaussian=0.8)]) == "Gaussian fits best in every layer."
    assert families.answer([layer(1, gaussian=0.9, matern52=0.905)]).endswith(
        "the Gaussian's r is within 0.01 of the best in every layer, so it fits about as well.")
    constant = LayerFamilies(1, tuple(FamilyFit(f, 1.0, float("nan")) for f in covariance.FAMILIES))
    assert "none fits best" in families.answer([constant])


def test_the_table_shades_each_layers_best_cell_dark_and_near_ties_light():
    rows = [layer(1, gaussian=0.7, laplace=0.8, matern32=0.795), layer(2, gaussian=0.9)]
    styled = families.family_table(rows, ["a", "b"])
    frame = styled.data
    assert list(frame.columns) == ["layer", "best fit", *families.NAMES.values()]
    assert list(frame["best fit"]) == ["Laplace", "Gaussian"] and frame["Laplace"][0] == "0.800 (σ 1.00)"
    column = list(frame.columns).index
    shades = {cell: css[0][1] for cell, css in styled._compute().ctx.items() if css}  # (row, column) -> colour
    assert shades == {(0, column("Laplace")): families.BEST_STYLE.split(": ")[1],
                      (0, column("Matérn 3/2")): families.NEAR_STYLE.split(": ")[1],
                      (1, column("Gaussian")): families.BEST_STYLE.split(": ")[1]}


def test_learned_page_answers_is_it_gaussian_for_the_bundled_example():
    add_bundled_example()
    at = run_page(LEARNED, timeout=120)
    example = examples.load_example()
    rows = family_fits(example.covariances)
    assert families.answer(rows) in [m.value for m in at.markdown]
    assert "Is it Gaussian? Five closed forms, layer by layer" in [s.value for s in at.subheader]
    table = next(d.value for d in at.dataframe if "best fit" in d.value.columns)
    assert list(table["best fit"]) == [families.NAMES[row.best.family] for row in rows]
    assert list(table["layer"]) == [f"{i + 1}: {name}" for i, name in enumerate(example.layer_names)]
    assert families.CAPTION in [c.value for c in at.caption]


def test_learned_page_names_the_family_each_uploaded_layer_was_built_from():
    layers = [covariance.closed_form(family, 5, 1.2) for family in ("laplace", "gaussian", "laplace")]
    at = new_app(LEARNED, timeout=120).run()
    at.radio(key="lc_source").set_value("An uploaded covariance file").run()
    upload = ("built.npy", matrix_files.covariance_bytes(layers, "npy"), "application/octet-stream")
    at.get("file_uploader")[0].set_value(upload)
    at.run()
    assert_clean(at, "a file of closed forms")
    table = next(d.value for d in at.dataframe if "best fit" in d.value.columns)
    assert list(table["best fit"]) == ["Laplace", "Gaussian", "Laplace"]
    assert "Laplace fits best in 2 of 3 layers and Gaussian in 1;" in " ".join(m.value for m in at.markdown)
