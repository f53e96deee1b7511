"""Loading runs: the normalisation a run's encoder is evaluated with."""

import torch
from tiny_runs import tiny

from synco.data.loaders import channel_stats
from synco.engine.inputs import load_labelled_splits
from synco.runs import run_normalisation


def test_run_normalisation_is_the_pretraining_images_and_older_checkpoints_recompute_it(tmp_path):
    cfg = tiny(tmp_path, "data.subset=100", "eval.train_subset=40")
    labelled, _ = load_labelled_splits(cfg)
    pixels = labelled.images[:100].double() / 255  # the pretraining images, not the 40 of the bank
    expected_mean, expected_std = pixels.mean(dim=(0, 2, 3)).tolist(), pixels.std(dim=(0, 2, 3)).tolist()
    mean, std = run_normalisation({}, cfg, labelled)  # a checkpoint without the recorded statistics
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), torch.tensor(expected_mean, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.tensor(std, dtype=torch.float64), torch.tensor(expected_std, dtype=torch.float64), atol=1e-6, rtol=0)
    assert channel_stats(labelled.images[:40]) != (mean, std)
    recorded = {"normalisation": {"mean": [0.25], "std": [0.5]}}
    assert run_normalisation(recorded, cfg, labelled) == ([0.25], [0.5])
