"""ConvRFM (seed 001, Algorithm 1) and Deep ConvRFM (Algorithm 2) on the Laplace patch kernel (kernel.py).

ConvRFM: M_0 = I; for t = 0..T, kernel ridge regression with K_{M_t} on the fit part of the training
set, the ridge chosen by accuracy on the held-out validation part, then M_{t+1} = the patch-AGOP of
that predictor over the fit images. M is the learned M_t (t >= 1; M_0 when T = 0, the base kernel
without feature learning) with the best validation accuracy; with it and its ridge the predictor is
trained again on the whole training set (refit=True).

Deep ConvRFM: layer l runs ConvRFM on X_l, draws `filters` filters W_l ~ N(0, M_l) (R z with R R^T = M_l,
z ~ N(0, I): the seed's Appendix B applies M^(1/2) to standard normal filters; no bias) and computes
X_{l+1} = maxpool_2(relu(conv(X_l, W_l))), the block of the Feature Ansatz CNN (models.SmallCNN); the
last layer's ConvRFM predicts. The seed lowers its CNTK's depth by one per layer so that no layer
sees a deeper kernel than the CNN; the Laplace kernel has no depth, so every layer uses the same
patch kernel on its own input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..sampling import symmetric_sqrt_factor
from ..validation import whole_number
from .kernel import kernel_agop, laplace_kernel, patch_metric

Tensor = torch.Tensor

REGULARIZERS = (1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
#: L = 4 x the median patch distance: validation accuracy 71.5% against 66.5% at 1 x (ConvRFM, T = 4,
#: noisy-bars at noise 0.5, 1,000 images, seed 0).
BANDWIDTH = 4.0


def ridge_solutions(K: Tensor, Y: Tensor, regularizers) -> list[Tensor]:
    """alpha = (K + lambda I)^-1 Y for each lambda, from one eigendecomposition K = V diag(w) V^T:
    alpha = V diag(1 / (w + lambda)) V^T Y (w clipped at 0: K is positive semi-definite)."""
    w, V = torch.linalg.eigh(K.double())
    VY = V.T @ Y.double()
    return [V @ (VY / (w.clamp_min(0) + lam)[:, None]) for lam in regularizers]


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(fit, validation) indices: a seeded permutation of range(n), round(val_fraction n) (at least 1)
    of it held out; ValueError unless both parts keep 2 images."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    n_val = max(1, round(val_fraction * n))
    if n - n_val < 2 or n_val < 1:
        raise ValueError(f"{n} training images are too few for a validation split of {val_fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_val:], order[:n_val]


def accuracy(scores: Tensor, y: Tensor) -> float:
    """Share of rows whose largest score is at the label, in percent."""
    return 100.0 * (scores.argmax(dim=1) == y).double().mean().item()


def sample_patch_filters(M: Tensor, n: int, channels: int, patch_size: int,
                         generator: torch.Generator | None = None) -> Tensor:
    """n filters (n, c, q, q) with vec(W) ~ N(0, M): R z, R R^T = M (sampling.symmetric_sqrt_factor,
    so a singular M is fine), z ~ N(0, I); vec is the (channel, row, column) order of the patches."""
    R = symmetric_sqrt_factor(torch.as_tensor(M, dtype=torch.float64)).float()
    z = torch.randn(whole_number(n, "number of filters", 1), R.shape[0], generator=generator)
    return (z @ R.T).reshape(n, channels, patch_size, patch_size)


def _check_data(X, y) -> tuple[Tensor, Tensor]:
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    if X.dim() != 4 or len(X) < 3:
        raise ValueError(f"X must be a (n, c, H, W) tensor of at least 3 images, got shape {tuple(X.shape)}")
    if y.shape != (len(X),) or y.dtype.is_floating_point or y.min() < 0:
        raise ValueError(f"y must hold one non-negative integer label per image ({len(X)}), got {tuple(y.shape)}")
    return X.float(), y.long()


class ConvRFM:
    """Laplace-ConvRFM: fit(X, y) on images (n, c, H, W) and integer labels, predict(X) -> labels.

    patch_size q (odd), iterations T (0: the base kernel, no feature learning), bandwidth: L as a
    multiple of the median patch distance, regularizers: the ridges tried, val_fraction: the share of
    the training set held out to choose them and M, agop_images: the fit images the AGOP averages over
    (default all; fewer is cheaper), seed: the split, refit: train the final predictor on all of X.

    After fit: M (c q^2, c q^2) float64, history (per iteration: validation accuracy, ridge,
    bandwidth), chosen (the iteration of M), regularizer, metric.
    """

    def __init__(self, patch_size: int = 5, iterations: int = 3, *, bandwidth: float = BANDWIDTH,
                 regularizers=REGULARIZERS, val_fraction: float = 0.2, agop_images: int | None = None,
                 seed: int = 0, refit: bool = True):
        self.patch_size = whole_number(patch_size, "patch size", 1)
        if self.patch_size % 2 == 0:
            raise ValueError(f"patch size must be odd (patches are centred on a pixel), got {patch_size}")
        self.iterations = whole_number(iterations, "iterations", 0)
        if not 0 < bandwidth < float("inf"):
            raise ValueError(f"bandwidth must be a finite number > 0, got {bandwidth!r}")
        self.bandwidth, self.regularizers = float(bandwidth), tuple(float(r) for r in regularizers)
        if not self.regularizers or min(self.regularizers) <= 0:
            raise ValueError(f"regularizers must be positive numbers, got {regularizers!r}")
        self.val_fraction, self.seed, self.refit = val_fraction, whole_number(seed, "seed", 0), refit
        self.agop_images = None if agop_images is None else whole_number(agop_images, "agop_images", 1)

    def fit(self, X, y) -> "ConvRFM":
        X, y = _check_data(X, y)
        self.classes = int(y.max()) + 1
        fit_idx, val_idx = split_indices(len(X), self.val_fraction, self.seed)
        X_fit, X_val, y_fit = X[fit_idx], X[val_idx], y[fit_idx]
        M = torch.eye(X.shape[1] * self.patch_size ** 2, dtype=torch.float64)
        self.history, best = [], None
        for t in range(self.iterations + 1):
            metric = patch_metric(M, X_fit, self.patch_size, self.bandwidth)
            alpha, reg, acc = self._ridge(metric, X_fit, y_fit, X_val, y[val_idx])
            self.history.append({"iteration": t, "val_acc": acc, "regularizer": reg, "bandwidth": metric.bandwidth})
            if best is None or best[0] == 0 or acc > best[4]:  # a learned M beats M_0 = I
                best = (t, M, metric, alpha, acc, reg)
            if t < self.iterations:
                M = kernel_agop(metric, X_fit, alpha, self.agop_images)
        self.chosen, self.M, self.metric, self.alpha, _, self.regularizer = best
        self.train_X = X_fit
        if self.refit:
            K = laplace_kernel(self.metric, X, X)
            self.alpha, self.train_X = ridge_solutions(K, self._targets(y), [self.regularizer])[0], X
        return self

    def _targets(self, y: Tensor) -> Tensor:
        return F.one_hot(y, self.classes).double()

    def _ridge(self, metric, X_fit, y_fit, X_val, y_val) -> tuple[Tensor, float, float]:
        """(alpha, ridge, validation accuracy) of the ridge with the best validation accuracy."""
        alphas = ridge_solutions(laplace_kernel(metric, X_fit, X_fit), self._targets(y_fit), self.regularizers)
        K_val = laplace_kernel(metric, X_val, X_fit)
        scores = [accuracy(K_val @ alpha, y_val) for alpha in alphas]
        best = max(range(len(alphas)), key=scores.__getitem__)
        return alphas[best], self.regularizers[best], scores[best]

    def decision_function(self, X) -> Tensor:
        """Class scores f(x) = alpha^T K_M(X_train, x): (n, classes) float64."""
        if not hasattr(self, "alpha"):
            raise ValueError("fit the ConvRFM before predicting")
        return laplace_kernel(self.metric, X, self.train_X) @ self.alpha

    def predict(self, X) -> Tensor:
        return self.decision_function(X).argmax(dim=1)

    def score(self, X, y) -> float:
        """Test accuracy in percent."""
        X, y = _check_data(X, y)
        return accuracy(self.decision_function(X), y)


def conv_block(X: Tensor, filters: Tensor) -> Tensor:
    """maxpool_2(relu(conv(X, W))) with zero padding q // 2 and no bias (models.SmallCNN's block)."""
    return F.max_pool2d(F.relu(F.conv2d(X, filters, padding=filters.shape[-1] // 2)), 2, ceil_mode=True)


def layer_patch_sizes(patch_size, layers: int) -> tuple[int, ...]:
    """Each layer's q: patch_size for every layer, one per layer, or None for the Feature Ansatz CNN's
    5 x 5 then 3 x 3 (model_pairs.cnn_config)."""
    if patch_size is None:
        return (5,) + (3,) * (layers - 1)
    sizes = (patch_size,) * layers if isinstance(patch_size, int) else tuple(patch_size)
    if len(sizes) != layers:
        raise ValueError(f"need one patch size per layer: {layers} layers, {len(sizes)} patch sizes")
    return sizes


class DeepConvRFM:
    """Deep Laplace-ConvRFM with `layers` layers (module docstring): fit(X, y), predict(X).

    patch_size: every layer's q, one per layer, or None (5 x 5, then 3 x 3: the Feature Ansatz CNN's);
    filters: filters drawn per layer (64 in the seed); the other options are each layer's ConvRFM's.
    After fit: machines (each layer's ConvRFM), weights (the filters of layers 1..L-1), M (per layer).
    """

    def __init__(self, layers: int = 2, patch_size=None, iterations: int = 3, *, filters: int = 64,
                 seed: int = 0, **options):
        self.layers = whole_number(layers, "layers", 1)
        self.filters = whole_number(filters, "filters", 1)
        self.seed = whole_number(seed, "seed", 0)
        self.patch_sizes = layer_patch_sizes(patch_size, self.layers)
        self.iterations, self.options = iterations, options
        for layer in range(self.layers):
            self._machine(layer)  # checks the options now

    def _machine(self, layer: int) -> ConvRFM:
        """Layer `layer`'s ConvRFM, unfitted; only the last one trains its predictor on all images."""
        return ConvRFM(self.patch_sizes[layer], self.iterations, seed=self.seed, refit=layer == self.layers - 1,
                       **self.options)

    def fit(self, X, y, first_layer: ConvRFM | None = None) -> "DeepConvRFM":
        """first_layer: a ConvRFM already fitted on (X, y) with layer 1's options, used as layer 1
        instead of fitting it again."""
        X, y = _check_data(X, y)
        if first_layer is not None and (getattr(first_layer, "M", None) is None
                                        or first_layer.patch_size != self.patch_sizes[0]):
            raise ValueError(f"first_layer must be a fitted ConvRFM with {self.patch_sizes[0]} x "
                             f"{self.patch_sizes[0]} patches")
        generator = torch.Generator().manual_seed(self.seed)
        self.machines, self.weights = [], []
        for layer in range(self.layers):
            reuse = layer == 0 and first_layer is not None
            machine = first_layer if reuse else self._machine(layer).fit(X, y)
            self.machines.append(machine)
            if layer < self.layers - 1:
                self.weights.append(sample_patch_filters(machine.M, self.filters, X.shape[1], machine.patch_size,
                                                         generator))
                X = conv_block(X, self.weights[-1])
        return self

    @property
    def M(self) -> list[Tensor]:
        """Each layer's feature matrix (c_l q^2 x c_l q^2)."""
        return [machine.M for machine in self.machines]

    def transform(self, X) -> Tensor:
        """The last layer's input: X through the drawn filters' blocks."""
        X = torch.as_tensor(X).float()
        for filters in self.weights:
            X = conv_block(X, filters)
        return X

    def predict(self, X) -> Tensor:
        return self.machines[-1].predict(self.transform(X))

    def score(self, X, y) -> float:
        """Test accuracy in percent."""
        X, y = _check_data(X, y)
        return self.machines[-1].score(self.transform(X), y)
