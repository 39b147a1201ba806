"""ConvRFM and Deep ConvRFM (seed 001, Algorithms 1 and 2) on the Mahalanobis Laplace patch kernel.

kernel: the patch kernel K_M, its kernel matrices and the patch-AGOP of a kernel predictor, in chunks;
machines: the estimators (fit / predict / score, feature matrix M) and kernel ridge regression;
experiment: the side-by-side comparison with the base kernel and the Feature Ansatz CNN over noise
levels and seeds (seed 001's Figure 5), how long it should take, and the measured sweep; against_cnn:
a ConvRFM against a CNN's first conv layer.
"""

from .experiment import MODELS, NoiseSweep, Setup, compare_models, estimate_seconds, measured_sweep, noise_sweep
from .kernel import PatchMetric, kernel_agop, laplace_kernel, patch_metric
from .machines import BANDWIDTH, ConvRFM, DeepConvRFM, ridge_solutions, sample_patch_filters

__all__ = ["BANDWIDTH", "MODELS", "ConvRFM", "DeepConvRFM", "NoiseSweep", "PatchMetric", "Setup", "compare_models",
           "estimate_seconds", "kernel_agop", "laplace_kernel", "measured_sweep", "noise_sweep", "patch_metric",
           "ridge_solutions", "sample_patch_filters"]
