"""Evaluation protocols."""

from synco.eval.features import extract_features, raw_pixel_features
from synco.eval.knn import knn_accuracy, knn_predict

__all__ = ["extract_features", "knn_accuracy", "knn_predict", "raw_pixel_features"]
