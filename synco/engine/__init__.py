"""Configuration, the training loop, checkpoints and metrics files."""
