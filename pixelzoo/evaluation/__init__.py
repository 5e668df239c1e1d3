"""Evaluation: bits/dim over data sets, and sample-quality metrics (FID, IS, KID, improved
precision/recall, CAS, FID*, nearest neighbours) in the feature space of a classifier that pixelzoo
trains on each data set (or any feature network you pass)."""

from .classifier import (LeNetClassifier, classifier_accuracy, create_classifier, data_fingerprint,
                         get_feature_network, list_classifiers, load_classifier, register_classifier,
                         save_classifier, train_classifier)
from .bounds import elbo, iwae_bound
from ..training.held_out import dataset_bits_per_dim
from .metrics import fid, frechet_distance, gaussian_stats, inception_score, kid, nearest_neighbours, precision_recall
from .sample_quality import (classification_accuracy_score, compute_features, compute_probs, feature_network_id,
                             fid_star, nearest_neighbour_grid, real_vs_real, sample_quality)

__all__ = [
    "LeNetClassifier",
    "classification_accuracy_score",
    "classifier_accuracy",
    "compute_features",
    "compute_probs",
    "create_classifier",
    "data_fingerprint",
    "dataset_bits_per_dim",
    "elbo",
    "feature_network_id",
    "fid",
    "fid_star",
    "frechet_distance",
    "gaussian_stats",
    "get_feature_network",
    "inception_score",
    "iwae_bound",
    "kid",
    "list_classifiers",
    "load_classifier",
    "nearest_neighbour_grid",
    "nearest_neighbours",
    "precision_recall",
    "real_vs_real",
    "register_classifier",
    "sample_quality",
    "save_classifier",
    "train_classifier",
]
