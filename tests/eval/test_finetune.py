"""Semi-supervised fine-tuning: balanced, reproducible label subsets written to files, and synco finetune."""

import pytest
import torch

from synco.data.subsets import balanced_subset, read_subset, sample_names, write_subset
from synco.engine.metrics import read_metrics


def test_balanced_subset_is_per_class_deterministic_and_seeded():
    labels = torch.arange(10).repeat_interleave(torch.tensor([100, 100, 100, 100, 100, 50, 50, 50, 50, 7]))
    subset = balanced_subset(labels, 0.1, seed=0)
    counts = torch.bincount(labels[subset], minlength=10).tolist()
    assert counts == [10] * 5 + [5] * 4 + [1]  # round(0.1 * n_c), at least one per class
    assert torch.equal(subset, balanced_subset(labels, 0.1, seed=0))
    assert not torch.equal(subset, balanced_subset(labels, 0.1, seed=1))
    assert subset.unique().numel() == subset.numel() and torch.equal(subset, subset.sort().values)
    with pytest.raises(ValueError, match="fraction"):
        balanced_subset(labels, 0.0)


def test_subset_files_round_trip_and_unknown_names_are_reported(tmp_path):
    class Folder:  # the part of folders.FolderData that subsets use
        in_memory = False
        paths = ("/d/train/a/x1.JPEG", "/d/train/a/x2.JPEG", "/d/train/b/y1.JPEG")

        def __len__(self):
            return 3

    assert sample_names(Folder()) == ["x1.JPEG", "x2.JPEG", "y1.JPEG"]
    write_subset(tmp_path / "s.txt", ["y1.JPEG", "x1.JPEG"])
    assert read_subset(tmp_path / "s.txt", Folder()).tolist() == [0, 2]
    (tmp_path / "bad.txt").write_text("x1.JPEG\nnope.JPEG\n")
    with pytest.raises(ValueError, match="names 1 samples not in the split"):
        read_subset(tmp_path / "bad.txt", Folder())


@pytest.mark.slow
def test_synco_finetune_writes_and_reuses_its_subset(tmp_path):
    from tiny_runs import tiny

    from synco.engine.pretrain import pretrain
    from synco.eval.protocols.finetune import run_finetune

    pretrain(tiny(tmp_path / "run", "train.epochs=1", "eval.baselines=false"))
    settings = ["finetune.fraction=0.01", "finetune.epochs=4", "finetune.batch_size=64", "finetune.lr=0.1",
                "finetune.seeds=[0,1]"]
    summary = run_finetune(tmp_path / "run", overrides=settings)
    subset_file = tmp_path / "run" / "subsets" / "fashion_mnist_1pct_seed0.txt"
    assert summary["finetune/subset_file"] == str(subset_file)
    assert summary["finetune/labelled_images"] == 600 == len(subset_file.read_text().split())  # 60 per class
    records = read_metrics(tmp_path / "run" / "finetune_1pct" / "metrics.jsonl")
    assert [r["seed"] for r in records if "seed" in r] == [0, 1]
    assert summary["finetune/top1_mean"] > 30  # 10 classes
    before = subset_file.read_text()
    again = run_finetune(tmp_path / "run", overrides=[*settings, "finetune.seeds=[0]",
                                                      f"finetune.out_dir={tmp_path / 'again'}"])
    assert subset_file.read_text() == before  # reused, not redrawn
    assert again["finetune/top1_mean"] == records[0]["finetune/top1"]  # same subset, same seed: same result
