"""A tiny pretraining setting shared by the end-to-end tests: Fashion-MNIST subsets, seconds per run."""

from synco.config import load_config

TINY = [
    "data.dataset=fashion_mnist", "data.image_size=28", "data.subset=256", "model.backbone=small_cnn",
    "model.bn_splits=4", "method.queue_size=128", "method.momentum=0.99", "method.negatives.num_hard=32",
    "method.negatives.num_interpolate=8", "method.negatives.num_extrapolate=8", "method.negatives.num_mixup=8",
    "method.negatives.num_noise=4", "method.negatives.num_perturb=4", "method.negatives.num_adversarial=4",
    "method.negatives.warmup_epochs=1", "train.batch_size=64", "train.lr=0.05", "train.progress=false",
    "eval.train_subset=256", "eval.test_subset=128", "eval.knn_k=20",
]


def tiny(run_dir, *extra):
    return load_config(None, TINY + [f"run_dir={run_dir}", f"data.cache_dir={run_dir}/cache", *extra])
