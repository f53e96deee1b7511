"""Data sets, their decoded caches, the views of a pretraining step and their augmentations."""
