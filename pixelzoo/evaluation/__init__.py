"""Evaluation: bits/dim over data sets and sample-quality metrics."""

from .likelihood import dataset_bits_per_dim

__all__ = ["dataset_bits_per_dim"]
