"""Reproduce the papers' claims: fixed small experiments over seeds, verdicts by stated rules, a report.

Six claims (seed 000, Trockman et al., ICLR 2023; seed 001, the Convolutional Neural Feature Ansatz):

1. Gaussian closed-form covariance init beats PyTorch's default init (ConvMixer, large kernels,
   short training).
2. In some cases the Gaussian init with depthwise filters frozen at init beats the default init with
   trained filters: tested in the main setting and every cell of the effect map, Holm over all.
3. Covariances learned by a trained ConvMixer (the bundled example, or a source trained 10 epochs)
   transfer: used to initialize another one they beat the default init, and the closed form meets or
   exceeds them (non-inferiority within the margin).
4. Learned covariances spread out with depth: the fitted sigma grows from the first to the last layer.
5. CNFA (seed 001): in every conv layer the Pearson r between the patch-AGOP and W^T W is high after
   training (> 0.9), higher than at initialization, and higher than the r between the trained and
   the initial W^T W (the seed's control: the weights moved far from their init, so the agreement
   was learned, not inherited).
6. The gain of the covariance init is largest for larger filters, deeper models and shorter
   training (seed 000): per seed, the gain (gaussian - default) at one end of an axis of an effect
   map minus the gain at its other end, averaged over the other axes' cells, by the superiority rule.

Every run but the CNNs is a trial of a sweep (convcov_core.sweep), trained on an executor (the local
process pool by default, or Ray) and stored under its key, so a stopped suite resumes where it stood
and the effect map shares its trials with the target grid. The seed count of the quick and full
suites follows a power rule (SeedRule) from a measured spread. One set of trainings serves claims
1-4: per seed, a source ConvMixer is trained for claim 3 (the quick suite takes the bundled example
instead) and the target ConvMixer is trained with every init variant (default, gaussian,
gaussian-frozen, learned from the source; default-frozen in the full suite); claim 4 reads the covariances
of the default-init runs, whose filters owe their structure to training alone, and counts a
fitted sigma only where the closed form fits with r >= FIT_R_MIN. Claim 5 trains a small plain CNN
per seed (model_pairs.train_cnn) and compares its CNFA check trained vs at init. Accuracies are
test accuracies with settled BatchNorm statistics (train/evaluation.py).

Every claim names the regime it was measured in (regime.regime_of: width and depth, filters against
the feature map, steps, data) beside the paper's; a verdict holds at that regime only (verdict_at).
The paper suite is the paper's rung for a GPU (ConvMixer-256/8, 9 x 9 filters on 32 x 32 maps).

Verdicts: RULES (paired t intervals from stats.mean_interval; a claim is supported when all of its
parts are, claim 2 when some case is, after Holm's correction).

Modules: rules (verdict rules: RULES, superiority, non_inferiority, equivalence, above, settle),
suites (Suite, SeedRule, tiny/quick/full/paper, build_suite, suite_sweeps, suite_runs, suite_images,
suite_flops; SuiteRuns, what a suite trained), run (run_suite, prepare, reproduce, estimate_seconds),
claims (the six claims, build_claims), report (make_report, provenance, markdown_report, write_report)
and files (report file names, default_out, load_report, report_folders, find_reports, REPO_REPORTS).
Every public name is re-exported here.
"""

from .claims import (
    CNFA_THRESHOLD,
    FIT_R_MIN,
    build_claims,
    claim_cnfa,
    claim_frozen_gaussian,
    claim_gain_grows,
    claim_gaussian_beats_default,
    claim_sigma_grows,
    claim_transfer,
    verdict_at,
)
from .files import (
    REPO_REPORTS,
    REPORT_FORMAT,
    REPORT_JSON,
    REPORT_MD,
    default_out,
    find_reports,
    load_report,
    report_folders,
)
from .report import make_report, markdown_report, provenance, write_report
from .rules import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    RULES,
    SUPPORTED,
    VERDICTS,
    above,
    equivalence,
    non_inferiority,
    settle,
    settle_some,
    superiority,
    unrefuted_below,
)
from .run import estimate_seconds, prepare, reproduce, run_suite
from .suites import (
    MARGIN_POINTS,
    SUITES,
    SeedRule,
    Suite,
    SuiteRuns,
    SuiteSweeps,
    build_suite,
    full_suite,
    paper_suite,
    quick_suite,
    suite_flops,
    suite_images,
    suite_runs,
    suite_sweeps,
    tiny_suite,
)

__all__ = [
    # rules
    "SUPPORTED", "NOT_SUPPORTED", "INCONCLUSIVE", "VERDICTS", "RULES",
    "superiority", "non_inferiority", "equivalence", "above", "settle", "settle_some",
    "unrefuted_below",
    # suites
    "MARGIN_POINTS", "SeedRule", "Suite", "SuiteRuns", "SuiteSweeps", "tiny_suite", "quick_suite", "full_suite",
    "paper_suite",     "SUITES", "build_suite", "suite_sweeps", "suite_runs", "suite_images",
    "suite_flops",
    # run
    "run_suite", "prepare", "reproduce", "estimate_seconds",
    # claims
    "CNFA_THRESHOLD", "FIT_R_MIN", "claim_gaussian_beats_default", "claim_frozen_gaussian", "claim_transfer",
    "claim_sigma_grows", "claim_cnfa", "claim_gain_grows", "build_claims",
    "verdict_at",
    # report
    "make_report", "provenance", "markdown_report", "write_report",
    # files
    "REPORT_JSON", "REPORT_MD", "REPORT_FORMAT", "REPO_REPORTS", "default_out", "load_report", "report_folders",
    "find_reports",
]
