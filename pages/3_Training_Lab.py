"""Race init schemes: short comparisons over seeds with live curves, a results table and a verdict."""

from functools import partial

import pandas as pd
import streamlit as st

from convcov_app import background, interrupted, lab, labels
from convcov_app.navigation import page_setup
from convcov_app.store import (
    example_source,
    learned_covariances,
    learned_sources,
    run_store,
    store_problem,
    stored_comparison,
)
from convcov_app.support import CHART, device_name, present_datasets, shown_errors
from convcov_core import data, examples, init, jobs, learned_sets, models, reach, settings, text
from convcov_core.ensemble import use_ensemble
from convcov_core.plots import training as figures

page_setup("Training Lab")

SLOT = "lab"
CUSTOM_MODEL = "custom ConvMixer"
MODEL_CHOICES = [name for name, (spec, *_rest) in models.MODEL_PRESETS.items()
                 if not spec.startswith("cnn-")] + [CUSTOM_MODEL]
WIDTHS = (8, 16, 32, 64, 128, 256, 512)
#: A custom ConvMixer's spatial filters -> its NIFF MLP (models.convmixer_spec; None: k x k filters).
SPATIAL_FILTERS = {"k × k convolution": None, "NIFF, small MLP (2-8-4-C)": "small",
                   "NIFF, big MLP (2-16-128-32-C)": "big"}
BATCH_SIZES = (16, 32, 64, 128, 256, 512)
LEARNING_RATES = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)
SCHEME_BY_LABEL = {labels.scheme_label(name): name for name in init.init_names()}
KEPT = "lab_kept_setup"  # (preset, setup) of this visit: widget values are dropped on other pages
#: Why the run store cannot be read, or None: said once at the top; the parts that read the store
#: (learned covariances of runs, the latest comparison, History) are left out instead of each saying it.
STORE_PROBLEM = store_problem()


@st.cache_data(ttl=60, max_entries=4, show_spinner=False)
def load_learned(source: tuple) -> list:
    kind, ref = source
    return learned_sets.load_covariance_set(ref) if kind == "set" else learned_covariances(ref)


def model_choice(spec: str, kernel_size: int, patch_size) -> str:
    """The model widget's option for a spec (the preset with these sizes, else any preset of it)."""
    presets = [(name, k, p) for name, (s, k, p, _) in models.MODEL_PRESETS.items()
               if s == spec and name in MODEL_CHOICES]
    exact = [name for name, k, p in presets if (k, p) == (kernel_size, patch_size)]
    return (exact or [name for name, *_ in presets] or [CUSTOM_MODEL])[0]


def apply_setup(setup: lab.LabSetup) -> None:
    """Put a setup's values into the widgets."""
    s, t = st.session_state, setup.training
    s.lab_dataset, s.lab_k, s.lab_patch = t.dataset, t.kernel_size or s.get("lab_k", 9), t.patch_size or 1
    s.lab_model = model_choice(t.model, t.kernel_size, t.patch_size)
    if s.lab_model == CUSTOM_MODEL:
        parsed = models.parse_spec(t.model)
        s.lab_width, s.lab_depth = parsed["dim"], parsed["depth"]
        s.lab_spatial = next(label for label, niff in SPATIAL_FILTERS.items() if niff == parsed["niff"])
    s.lab_inits = [labels.scheme_label(name) for name in setup.inits]
    s.lab_custom_sigma = setup.sigma_first is not None
    if s.lab_custom_sigma:
        s.lab_sigma_first, s.lab_sigma_last = setup.sigma_first, setup.sigma_last
    s.lab_filters, s.lab_epochs, s.lab_batch = setup.filters, t.epochs, t.batch_size
    s.lab_lr, s.lab_seeds, s.lab_max_steps = t.lr, setup.n_seeds, t.max_steps or 0
    s.lab_precision = t.precision
    s.lab_ensemble = use_ensemble(t, setup.ensemble)


def apply_preset() -> None:
    setup, note = lab.preset_setup(st.session_state.lab_preset, present_datasets())
    apply_setup(setup)
    # presets with a learned scheme learn from the bundled example (in the store, when it can be read)
    if "learned" in setup.inits and STORE_PROBLEM is None:
        example = example_source(learned_sources())
        if example is not None:
            st.session_state.lab_learned = example
        else:  # shown once, above the setup it left out
            st.session_state.lab_preset_warning = (
                "This preset's learned scheme takes the covariances of the bundled example network, "
                "which is no longer in the run store, so it is left out: add *Learned covariance* "
                "back and pick another source, if there is one.")
    st.session_state.lab_preset_note = note


def apply_model_sizes() -> None:
    """A model preset brings its own kernel and patch size."""
    choice = st.session_state.lab_model
    if choice in models.MODEL_PRESETS:
        _, k, p, _ = models.MODEL_PRESETS[choice]
        st.session_state.lab_k, st.session_state.lab_patch = k or st.session_state.lab_k, p or 1
    else:
        st.session_state.setdefault("lab_width", 32)
        st.session_state.setdefault("lab_depth", 4)
        st.session_state.setdefault("lab_spatial", next(iter(SPATIAL_FILTERS)))


def model_widgets(datasets: dict, max_k: int) -> tuple[str, str, int, int]:
    """Preset, dataset, model, kernel and patch size: (dataset, model spec, k, patch)."""
    st.header("Setup")
    st.selectbox("Start from a preset", list(lab.PRESETS), key="lab_preset", on_change=apply_preset,
                 help="Fills in every setting below; change any of them to make your own.")
    dataset = st.selectbox("Dataset", list(datasets), key="lab_dataset",
                           help="; ".join(f"{n}: {data.DATASETS.get(n, 'image folder')}" for n in datasets))
    choice = st.selectbox("Model", MODEL_CHOICES, key="lab_model", on_change=apply_model_sizes)
    if choice == CUSTOM_MODEL:
        width = st.select_slider("Channels (width)", WIDTHS, key="lab_width")
        depth = st.slider("Blocks (depth)", 1, 16, key="lab_depth")
        spatial = st.radio("Spatial filters", list(SPATIAL_FILTERS), key="lab_spatial",
                           help="NIFF (seed 002): each depthwise filter is as large as the feature map, "
                                "the response of a small MLP over frequencies, applied in the FFT domain.")
        spec = models.convmixer_spec(width, depth, SPATIAL_FILTERS[spatial])
    else:
        spec = models.MODEL_PRESETS[choice][0]
        st.caption(models.MODEL_PRESETS[choice][3])
    k = None  # a model without depthwise filters (a ViT) has no kernel size to choose
    if choice == CUSTOM_MODEL or models.MODEL_PRESETS[choice][1] is not None:
        niff = models.parse_spec(spec)["niff"]
        k = st.slider("Window k the NIFF filters' covariances are read in" if niff
                      else "Kernel size k of the depthwise filters", 3, max_k, step=2, key="lab_k",
                      help="NIFF filters cover the whole map; their central k × k crop goes through the "
                           "same covariance analyses as k × k filters." if niff else None)
    patch = st.number_input("Patch size", 1, 16, step=1, key="lab_patch",
                            help="The stem cuts images into p × p patches; larger is faster but coarser.")
    return dataset, spec, k, int(patch)


def offered_schemes(k: int | None, niff: bool, sources: dict) -> list[str]:
    """Labels of the schemes a model can start from: a ViT (k None) the default and the attention
    inits; a NIFF ConvMixer only the default (its filters come from MLPs); others every filter
    scheme, the learned one where there are covariances to learn from."""
    if niff:
        return [labels.scheme_label("default")]
    return [label for label, name in SCHEME_BY_LABEL.items()
            if ((name in init.MODEL_SCHEMES or name == "default") if k is None
                else name not in init.MODEL_SCHEMES and (name != "learned" or sources))]


def init_widgets_for(k: int | None, niff: bool) -> tuple[tuple, float | None, float | None, tuple | None, str]:
    """The init schemes, the Gaussian schedule, the learned source and the filter mode:
    (inits, sigma_first, sigma_last, learned source or None, filters). k None: a model without
    depthwise filters (a ViT), its weights all trained."""
    st.header("Init schemes")
    sources = learned_sources(with_runs=STORE_PROBLEM is None)
    offered = offered_schemes(k, niff, sources)
    st.session_state.lab_inits = [v for v in st.session_state.lab_inits if v in offered]
    chosen = st.multiselect("Compare (the first one is the reference)", offered, key="lab_inits")
    inits = tuple(SCHEME_BY_LABEL[label] for label in chosen)
    sigma_first = sigma_last = None
    if "gaussian" in inits:
        first, last = init.default_sigmas(k)
        if st.toggle("Custom σ schedule for the Gaussian init", key="lab_custom_sigma",
                     help=f"Default: σ grows linearly over depth from {first:g} to {last:g} (k / 3)."):
            sigma_first = st.select_slider("σ_first (first layer)", labels.SIGMA_OPTIONS, key="lab_sigma_first")
            sigma_last = st.select_slider("σ_last (last layer)", labels.SIGMA_OPTIONS, key="lab_sigma_last")
        else:
            st.caption(f"Gaussian init: σ from {first:g} (first layer) to {last:.3g} (last layer).")
    source = None
    if "learned" in inits:
        wanted = st.session_state.get("learned_init")
        if wanted in sources and st.session_state.get("lab_learned") not in sources:
            st.session_state.lab_learned = wanted
        source = sources[st.selectbox("Learned covariances from", list(sources), key="lab_learned",
                                      help="Resized to this model's kernel size and depth.")]
    if k is None:
        st.caption(labels.scheme_help("mimetic"))
        return inits, sigma_first, sigma_last, source, "trained"
    if niff:
        st.caption("NIFF filters come from MLPs over frequencies, which start from PyTorch's init: the "
                   "filter inits do not apply. Their trained covariances can initialize k × k ConvMixers "
                   "(Learned Covariances, *Use as init*).")
    elif not sources:
        st.caption("A *learned* scheme appears once a run with saved covariances exists (or a set "
                   "made on the Learned Covariances page).")
    filters = st.radio("Depthwise filters", list(lab.FILTER_MODES), key="lab_filters",
                       help="frozen at init: the filters never change, so the init alone decides "
                            "what spatial structure the network can use.")
    return inits, sigma_first, sigma_last, source, filters


def training_widgets() -> tuple[dict, int, bool]:
    """Epochs, batch size, learning rate, step cap and precision (TrainConfig fields), seeds, and
    whether the runs train together."""
    st.header("Training")
    epochs = st.number_input("Epochs", 1, 100, step=1, key="lab_epochs")
    batch = st.select_slider("Batch size", BATCH_SIZES, key="lab_batch")
    lr = st.select_slider("Peak learning rate (AdamW, one-cycle)", LEARNING_RATES, key="lab_lr")
    n_seeds = st.number_input("Seeds (runs per variant)", 1, 10, step=1, key="lab_seeds",
                              help="Seeds 0, 1, ...: every variant runs once per seed, and the "
                                   "differences are paired by seed.")
    with st.expander("Advanced"):
        max_steps = st.number_input("Stop each run after this many steps (0: whole epochs)", 0, 100_000,
                                    step=10, key="lab_max_steps")
        precision = st.radio("Precision", ["auto", "fp32"], key="lab_precision", horizontal=True,
                             help="auto: bf16 autocast where the hardware has bf16 arithmetic (a GPU, "
                                  "or a CPU with AMX or AVX512-BF16; the device line above says which), "
                                  "fp32 elsewhere. fp32 is slower; on mnist5k the two reached the same "
                                  "test accuracy within seed noise (benchmarks/precision_accuracy.py).")
        ensemble = st.checkbox("Train the runs together as one network", key="lab_ensemble",
                               help="The runs differ only in seed, init and frozen filters, so they train as "
                                    "one network whose layers are grouped over them: each ends as it would "
                                    "alone (within float rounding). Cancel then stops them all. On by default "
                                    "on a GPU; on a CPU it measured no faster.")
    return dict(epochs=int(epochs), batch_size=batch, lr=lr, max_steps=int(max_steps) or None,
                precision=precision), int(n_seeds), ensemble


def sidebar(datasets: dict, max_k: int) -> tuple[lab.LabSetup, tuple | None]:
    """The setup widgets; returns the setup and the learned-covariance source (if learned is picked)."""
    dataset, spec, k, patch = model_widgets(datasets, max_k)
    inits, sigma_first, sigma_last, source, filters = init_widgets_for(k, bool(models.parse_spec(spec)["niff"]))
    budget, n_seeds, ensemble = training_widgets()
    training = lab.lab_training(dataset=dataset, model=spec, kernel_size=k, patch_size=patch, **budget)
    setup = lab.LabSetup(training, inits=inits, filters=filters, n_seeds=n_seeds, sigma_first=sigma_first,
                         sigma_last=sigma_last, ensemble=ensemble)
    return setup, source


def init_widgets() -> None:
    """First visit: the default preset. Back from another page: the visitor's own setup, unless
    its dataset has gone (then the preset again)."""
    if "lab_preset" not in st.session_state:
        kept = st.session_state.get(KEPT)
        if kept is not None and kept[1].training.dataset in present_datasets():
            st.session_state.lab_preset = kept[0]
            apply_setup(kept[1])
        else:
            st.session_state.lab_preset = lab.QUICK_CPU
            apply_preset()
    st.session_state.setdefault("lab_sigma_first", 1.0)
    st.session_state.setdefault("lab_sigma_last", 5.0)


def live_curves(events) -> None:
    curves = lab.curves_from_events(events)
    left, right = st.columns(2, gap="medium")
    left.plotly_chart(figures.loss_figure(curves), **CHART)
    right.plotly_chart(figures.accuracy_figure(curves), **CHART)


def start_comparison(plan: lab.ComparisonPlan) -> None:
    with st.spinner("Checking that the model fits the images…"):
        reach.check_model_fits(plan.config(next(iter(plan.variants))))
    background.start(SLOT, "compare", plan.base, variants=plan.variants, seeds=plan.seeds,
                   references=plan.references, ensemble=plan.ensemble, batch_size=plan.base.batch_size)
    st.rerun()


@st.cache_data(max_entries=16, show_spinner=False)
def stored_run(store_path: str, run_id: int):
    return run_store().get(run_id)


def show_results(status, result) -> None:
    """The finished job: verdict, table, figures, and where it was saved."""
    st.header("Results")
    if status.state == "failed":
        st.error(f"The comparison stopped with an error: {status.message}")
        return
    cmp = stored_comparison(status.result_id) if status.result_id else result
    if cmp is None or not any(cmp.runs.values()):
        st.info("Cancelled before any run finished: nothing to show or save.")
        return
    say = st.warning if cmp.status != "ok" else st.success if lab.verdict_is_clear(cmp) else st.info
    say(lab.verdict_text(cmp))
    st.caption(lab.setup_line(cmp))
    st.dataframe(pd.DataFrame(lab.results_rows(cmp)), hide_index=True)
    with st.expander("Raw eval-mode accuracy: BatchNorm statistics as training left them"):
        st.caption("The table above evaluates every network after recomputing its BatchNorm statistics on "
                   "training images. Here they are as training left them: how far each init lets them "
                   "settle in this budget.")
        raw = cmp.judged_on("test_acc_raw")
        st.dataframe(pd.DataFrame(lab.results_rows(raw)), hide_index=True)
        st.markdown(raw.verdict)
    for line in lab.problem_runs(cmp):
        st.warning(f"Run {line}. Its history up to that point is kept and shown below.")
    curves = lab.curves_from_runs([r for runs in cmp.runs.values() for r in runs])
    c1, c2, c3 = st.columns([1, 1, 0.8], gap="medium")
    c1.plotly_chart(figures.loss_figure(curves), **CHART)
    c2.plotly_chart(figures.accuracy_figure(curves), **CHART)
    c3.plotly_chart(figures.results_figure(cmp.rows, cmp.seeds, height=380), **CHART)
    if cmp.id is not None:
        st.caption(f"Saved to the run store as comparison #{cmp.id}; find it under History below.")


def history_options(store) -> dict:
    options = {}
    for c in store.list_comparisons():
        unfinished = f" [{c.status}]" if c.status != "ok" else ""
        options[f"comparison #{c.id} ({c.created[:16].replace('T', ' ')}): {', '.join(c.variants)} on "
                f"{c.dataset}, {len(c.seeds)} seed(s){unfinished}"] = ("c", c.id)
    for r in store.list():
        if r.comparison_id is None:
            acc = f", test {r.test_acc:.1f}%" if r.test_acc is not None else f", {r.status}"
            options[f"run #{r.id} ({r.created[:16].replace('T', ' ')}): {r.init} {r.model} on "
                    f"{r.dataset}{acc}"] = ("r", r.id)
    return options


def delete_selected(chosen: list) -> None:
    store = run_store()
    for kind, ref in chosen:
        try:
            (store.delete_comparison if kind == "c" else store.delete)(ref)
        except ValueError:  # already deleted (another tab)
            pass
    st.session_state.lab_history = []
    st.session_state.lab_confirm_delete = False


def history() -> None:
    st.header("History")
    store = run_store()
    options = history_options(store)
    if not options:
        st.caption("Finished comparisons are saved here automatically.")
        return
    st.session_state.lab_history = [v for v in st.session_state.get("lab_history", []) if v in options]
    picked = st.multiselect("Saved comparisons and runs to overlay", list(options), key="lab_history")
    if not picked:
        st.caption(f"{len(options)} saved. Pick some to overlay their curves, export or delete them.")
        return
    chosen = [options[label] for label in picked]
    comparisons = [stored_comparison(ref) for kind, ref in chosen if kind == "c"]
    runs = [stored_run(str(store.path), ref) for kind, ref in chosen if kind == "r"]
    curves = [c for cmp in comparisons for c in
              lab.curves_from_runs([r for rs in cmp.runs.values() for r in rs], prefix=f"#{cmp.id} ")]
    curves += lab.curves_from_runs(runs, prefix="run ")
    left, right = st.columns(2, gap="medium")
    left.plotly_chart(figures.loss_figure(curves), **CHART)
    right.plotly_chart(figures.accuracy_figure(curves), **CHART)
    for cmp in comparisons:
        st.markdown(f"**Comparison #{cmp.id}:** {lab.verdict_text(cmp)}")
        st.caption(lab.setup_line(cmp))
        st.dataframe(pd.DataFrame(lab.results_rows(cmp)), hide_index=True)
    c1, c2, c3, c4 = st.columns(4)
    c1.download_button("Export JSON", partial(lab.history_json, comparisons, runs),
                       file_name="convcov_history.json", mime="application/json", key="lab_export_json")
    c2.download_button("Export curves CSV", partial(lab.curves_csv, curves), file_name="convcov_curves.csv",
                       mime="text/csv", key="lab_export_csv")
    confirm = c3.checkbox("Yes, delete these", key="lab_confirm_delete")
    c4.button("Delete selected", key="lab_delete", disabled=not confirm, on_click=delete_selected,
              args=(chosen,))


@st.cache_data(max_entries=32, show_spinner=False)
def reach_warning(config) -> str | None:
    """reach.kernel_reach_note, or why the model does not take these images at all (Run says it too)."""
    try:
        return reach.kernel_reach_note(config)
    except ValueError as err:
        return str(err)


@st.cache_data(max_entries=32, show_spinner=False)
def regime_lines(config) -> tuple[str | None, str | None]:
    """lab.regime_text, or (None, None) for a model that does not take these images (reach_warning says why)."""
    try:
        return lab.regime_text(config)
    except ValueError:
        return None, None


def controls(setup: lab.LabSetup, source) -> None:
    """What the setup will run, its size against the server's cap, Run and Estimate."""
    if "lab_preset_warning" in st.session_state:
        st.warning(st.session_state.pop("lab_preset_warning"))
    preset = lab.matching_preset(setup, present_datasets())
    regime, wider = regime_lines(setup.training)
    if preset:
        st.info(" ".join(filter(None, (f"**{preset}.**", regime, lab.PRESETS[preset].expect))))
        if st.session_state.get("lab_preset_note"):
            st.caption(st.session_state.lab_preset_note)
    else:
        st.caption(" ".join(filter(None, ("Custom settings (they match no preset).", regime,
                                          "Pick a preset in the sidebar to start over."))))
    if wider:
        st.warning(wider)
    if not setup.inits:
        st.info("Pick at least one init scheme in the sidebar.")
        return
    plan = lab.plan_comparison(setup, load_learned(source) if source else None)
    manager = background.job_manager()
    images = lab.run_images(plan.base) * plan.n_runs
    runs = f"{plan.n_runs} run{'s' if plan.n_runs > 1 else ''}"
    st.markdown(f"**{runs}:** {', '.join(plan.variants)} × seed(s) "
                f"{', '.join(map(str, plan.seeds))}; {images:,} training images in all.")
    if warning := reach_warning(plan.base.replace(covariances=None)):
        st.warning(warning)
    if images > manager.max_samples:
        st.warning(f"This comparison trains on {images:,} images, more than the {manager.max_samples:,} "
                   "this server allows per job (CONVCOV_MAX_JOB_SAMPLES): use fewer epochs, seeds or "
                   "variants, or run it from the command line on your own machine.")
    busy = background.running(SLOT) is not None
    run_col, estimate_col, note_col = st.columns([1, 1, 3], vertical_alignment="center")
    run = run_col.button("Run comparison", type="primary", key="lab_run", disabled=busy)
    estimate = estimate_col.button("Estimate time", key="lab_estimate", disabled=busy,
                                   help="Times a few training steps and one evaluation on this device.")
    if estimate and (too_large := jobs.memory_problem(plan.base)):  # timing would train a few steps
        st.error(f"Not timed: {too_large}")
    elif estimate:
        with st.spinner("Timing a few steps…"):
            st.session_state.lab_estimate_for = (setup, lab.estimate_seconds(plan))
    if st.session_state.get("lab_estimate_for", (None,))[0] == setup:
        note_col.markdown(f"Estimated time on this device: **about "
                          f"{text.duration(st.session_state.lab_estimate_for[1])}** "
                          "(more if the server is busy).")
    elif not busy:
        note_col.caption("Progress, live curves and then the results table and verdict appear below.")
    if run:
        start_comparison(plan)


def job_area() -> None:
    """Messages, the running job's progress and live curves, or the last result."""
    background.show_message(SLOT)
    mine = background.running(SLOT)
    if mine is None and STORE_PROBLEM is None:
        interrupted.show(SLOT)
    if mine is None and background.others_running(SLOT):
        background.busy_notice(SLOT)
    if mine is not None:
        background.progress(SLOT, live=live_curves, what="Training")
        return
    done = background.finished(SLOT)
    if done is not None:
        show_results(*done)
    elif STORE_PROBLEM is None:
        latest_comparison()


def latest_comparison() -> None:
    """Before this visitor has a result: the last comparison saved on this server, else the bundled
    example network's own training curves (what a run draws)."""
    store = run_store()
    saved = store.list_comparisons()  # newest first
    if saved:
        cmp = stored_comparison(saved[0].id)
        st.header("Latest comparison on this server")
        st.markdown(f"**Comparison #{cmp.id}:** {lab.verdict_text(cmp)}")
        st.caption(lab.setup_line(cmp) + ". Run your own with the settings in the sidebar; "
                   "older ones are under History.")
        curves = lab.curves_from_runs([r for runs in cmp.runs.values() for r in runs])
    elif (example := examples.stored_id(store)) is not None:
        st.header("What a run draws")
        st.caption("The training curves of the bundled example network (one run). A comparison draws "
                   "one line per variant and seed while it trains, then a results table and a verdict.")
        curves = lab.curves_from_runs([stored_run(str(store.path), example)])
    else:
        return
    left, right = st.columns(2, gap="medium")
    left.plotly_chart(figures.loss_figure(curves), **CHART, key="lab_latest_loss")
    right.plotly_chart(figures.accuracy_figure(curves), **CHART, key="lab_latest_accuracy")


st.title("Training Lab")
st.markdown(
    "Train the same network from different initializations of its depthwise filters and compare "
    "the test accuracy over several seeds, paired seed by seed. Training runs in the background "
    "while its curves update here, and every finished comparison is saved under History. "
    f"Device: **{device_name()}**."
)

if STORE_PROBLEM is not None:
    st.error(STORE_PROBLEM)
with shown_errors():
    init_widgets()
    with st.sidebar:
        setup, source = sidebar(present_datasets(), min(31, settings.max_kernel_size()))
    st.session_state[KEPT] = (st.session_state.lab_preset, setup)
    controls(setup, source)
with shown_errors():
    job_area()
if STORE_PROBLEM is None:
    with shown_errors():
        history()
