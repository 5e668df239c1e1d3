"""Sampling: ancestral sampling with temperature and inpainting."""

from .ancestral import ancestral_sample, prepare_known

__all__ = ["ancestral_sample", "prepare_known"]
