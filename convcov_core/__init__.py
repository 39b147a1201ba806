"""convcov_core: covariance structure of convolutional filters (closed forms, sampling, init)."""

__version__ = "0.1.0"
