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
def test_synco_finetune_writes_and_reuses_its_subset(tmp_path, tiny_runs):
    from synco.eval.protocols.finetune import run_finetune

    tiny_runs("train.epochs=1", "eval.baselines=false", copy_to=tmp_path / "run")
    settings = ["finetune.fraction=0.01", "finetune.epochs=4", "finetune.batch_size=64", "finetune.lr=0.1",
                "finetune.seeds=[0,1]", f"data.cache_dir={tmp_path / 'run' / 'cache'}"]
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


def test_shot_subset_takes_k_per_class_and_names_the_class_too_small():
    from synco.data.subsets import shot_subset

    labels = torch.arange(4).repeat_interleave(torch.tensor([9, 7, 12, 3]))
    subset = shot_subset(labels, 3, seed=0)
    assert torch.bincount(labels[subset]).tolist() == [3, 3, 3, 3]
    assert torch.equal(subset, shot_subset(labels, 3, seed=0)) and not torch.equal(subset, shot_subset(labels, 3, 1))
    with pytest.raises(ValueError, match="finetune.shots=4 is larger than the smallest class .class 3 has 3"):
        shot_subset(labels, 4)


@pytest.mark.parametrize("loss, weighting", [("ce", "anchor"), ("supcon", "anchor"), ("schane", "anchor"),
                                             ("schane", "positive"), ("simclr", "anchor")])
def test_training_loss_is_lambda_mix_of_ce_and_the_contrastive_term(loss, weighting):
    import math
    from types import SimpleNamespace

    from reference import schane_reference, supcon_reference

    from synco.eval.protocols.finetune import training_loss

    g = torch.Generator().manual_seed(0)
    features = torch.randn(8, 5, generator=g, dtype=torch.float64) * 3  # not unit: the loss normalises
    logits = torch.randn(8, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 3, 0, 2])
    ft = SimpleNamespace(loss=loss, contrastive_weight=0.7, temperature=0.2, weighting=weighting, detach_weights=False)
    def ce_of(row_labels):
        return sum(-(logits[i, row_labels[i]] - logits[i].logsumexp(0)).item() for i in range(8)) / 8

    ce = ce_of(labels)
    z = torch.nn.functional.normalize(features, dim=1)
    if loss == "simclr":  # rows 0-3 are the first views of 4 images, rows 4-7 their second views
        from reference import nt_xent_reference

        labels = labels[:4]  # CE reads both views: row i + 4 has image i's label
        expected = 0.3 * ce_of(labels.repeat(2)) + 0.7 * nt_xent_reference(z[:4], z[4:], 0.2)
    elif loss == "ce":
        expected = ce
    elif loss == "supcon":
        expected = 0.3 * ce + 0.7 * supcon_reference(z.unsqueeze(1), labels, None, 0.2, 0.2)
    else:
        expected = 0.3 * ce + 0.7 * schane_reference(z, labels, 0.2, weighting)
    assert training_loss(features, logits, labels, ft).item() == pytest.approx(expected, rel=1e-6)
    assert math.isfinite(expected)


@pytest.mark.parametrize("setting, match", [
    ("finetune.contrastive_weight=1.5", "contrastive_weight"), ("finetune.loss=triplet", "finetune.loss"),
    ("finetune.shots=0", "finetune.shots"), ("finetune.weighting=key", "finetune.weighting"),
    ("finetune.classifier_lr=0", r"finetune.classifier_lr=0.0 must be positive"),
])
def test_bad_fine_tuning_settings_are_named(setting, match):
    from synco.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=match):
        load_config(None, [setting])


@pytest.mark.slow
def test_five_shot_schane_fine_tuning_end_to_end(tmp_path, tiny_runs):
    from synco.eval.protocols.finetune import run_finetune

    tiny_runs("train.epochs=1", "eval.baselines=false", copy_to=tmp_path / "run")
    settings = ["finetune.shots=5", "finetune.loss=schane", "finetune.epochs=3", "finetune.batch_size=50",
                "finetune.lr=0.05", "finetune.seeds=[0]", f"data.cache_dir={tmp_path / 'run' / 'cache'}"]
    summary = run_finetune(tmp_path / "run", overrides=settings)
    subset_file = tmp_path / "run" / "subsets" / "fashion_mnist_5shot_seed0.txt"
    assert summary["finetune/subset_file"] == str(subset_file) and summary["finetune/labelled_images"] == 50
    assert summary["finetune/loss"] == "schane" and summary["finetune/contrastive_weight"] == 0.9
    assert (tmp_path / "run" / "finetune_5shot_schane" / "metrics.jsonl").is_file()
    with pytest.raises(ValueError, match="finetune.shots=7000 is larger than the smallest class"):
        run_finetune(tmp_path / "run", overrides=["finetune.shots=7000", "finetune.seeds=[0]"])


def test_the_command_line_summary_of_fraction_and_shot_runs():
    from synco.commands.finetune import summary_line

    record = {"finetune/shots": None, "finetune/fraction": 0.01, "finetune/loss": "ce", "finetune/contrastive_weight": None,
              "finetune/labelled_images": 500, "finetune/subset_file": "s.txt", "finetune/epochs": 60,
              "finetune/seeds": [0], "finetune/top1_mean": 37.5, "finetune/top1_std": 0.0, "finetune/top5_mean": 87.0,
              "finetune/top5_std": 0.0}
    assert summary_line(record).startswith("fine-tuned on 1 % of the labels (500 images, s.txt), 60 epochs")
    record.update({"finetune/shots": 5, "finetune/fraction": None, "finetune/loss": "schane",
                   "finetune/contrastive_weight": 0.9})
    assert summary_line(record).startswith("fine-tuned on 5 images per class with CE + schane (lambda 0.9)")


def test_the_classifier_can_learn_at_its_own_rate(tmp_path, monkeypatch):
    """finetune.classifier_lr: the linear head's SGD group has its own base rate, on the same cosine schedule."""
    import torch
    from tiny_runs import tiny

    from synco.eval.linear import cosine_factor
    from synco.pipelines.pretrain import pretrain
    from synco.eval.protocols import finetune as protocol

    made = []

    class Recorded(torch.optim.SGD):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    pretrain(tiny(tmp_path / "run", "train.epochs=0"))
    monkeypatch.setattr(protocol.torch.optim, "SGD", Recorded)
    summary = protocol.run_finetune(tmp_path / "run", overrides=[
        "finetune.shots=2", "finetune.epochs=2", "finetune.batch_size=20", "finetune.lr=0.01",
        "finetune.classifier_lr=0.1", "finetune.seeds=[0]", "finetune.loss=schane"])
    (optimizer,) = made
    backbone, head = optimizer.param_groups
    assert [tuple(p.shape) for p in head["params"]][1] == (10,)  # the linear head: weight (10, F), bias (10,)
    assert (backbone["base_lr"], head["base_lr"]) == (0.01, 0.1)
    assert head["lr"] == pytest.approx(0.1 * cosine_factor(1, 2)) and backbone["lr"] == pytest.approx(0.01 * cosine_factor(1, 2))
    assert summary["finetune/classifier_lr"] == 0.1


def test_the_validation_split_is_held_out_before_the_fine_tuning_subset_is_drawn(tmp_path):
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from synco.eval.protocols.finetune import labelled_subset, validation_subset

    labels = torch.arange(10).repeat_interleave(60)  # 600 images, 60 per class
    train = SimpleNamespace(labels=labels, in_memory=True, __len__=lambda: 600)
    cfg = OmegaConf.create({"data": {"cache_dir": str(tmp_path / "cache"), "dataset": "toy"},
                            "finetune": {"subset_file": None, "shots": 50, "fraction": 0.01, "subset_seed": 0,
                                         "val_images": 100, "val_seed": 0}})
    held_out = validation_subset(cfg, train)
    assert torch.bincount(labels[held_out], minlength=10).tolist() == [10] * 10
    subset, path = labelled_subset(cfg, train, write=False)
    assert torch.bincount(labels[subset], minlength=10).tolist() == [50] * 10
    assert not torch.isin(subset, held_out).any()  # 50 of the 50 left per class: every other image
    assert path.name == "toy_50shot_seed0_val100s0.txt"
    cfg.finetune.val_images = 5
    with pytest.raises(ValueError, match="finetune.val_images=5 gives no validation image to some of the 10"):
        validation_subset(cfg, train)
    cfg.finetune.val_images = None
    assert validation_subset(cfg, train) is None


@pytest.mark.parametrize("setting, match", [
    ("finetune.patience=3", "finetune.patience needs a validation split"), ("finetune.val_images=0", "val_images"),
    ("finetune.views=3", "finetune.views"), ("finetune.loss=simclr finetune.views=1", "simclr needs two views"),
])
def test_bad_validation_settings_are_named(setting, match):
    from synco.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=match):
        load_config(None, setting.split())


def test_two_views_make_each_image_s_other_view_a_positive_of_schane_and_supcon():
    from types import SimpleNamespace

    from reference import schane_reference, supcon_reference

    from synco.eval.protocols.finetune import training_loss

    g = torch.Generator().manual_seed(1)
    features = torch.randn(8, 5, generator=g, dtype=torch.float64)  # 4 images x 2 views, view-major
    logits = torch.randn(8, 3, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0])
    z = torch.nn.functional.normalize(features, dim=1)
    pairs = torch.stack([z[:4], z[4:]], dim=1)  # (4, 2, 5): image i's two views
    ce = torch.nn.functional.cross_entropy(logits, labels.repeat(2)).item()
    for loss, reference in (("supcon", supcon_reference(pairs, labels, None, 0.2, 0.2)),
                            ("schane", schane_reference(pairs.transpose(0, 1).reshape(8, 5), labels.repeat(2), 0.2,
                                                        "anchor"))):
        ft = SimpleNamespace(loss=loss, contrastive_weight=0.6, temperature=0.2, weighting="anchor",
                             detach_weights=False)
        assert training_loss(features, logits, labels, ft).item() == pytest.approx(0.4 * ce + 0.6 * reference, rel=1e-6)


def test_early_stopping_tests_the_epoch_with_the_best_validation_score(tmp_path, monkeypatch):
    """finetune.val_images: the test split scores the weights of the best validation epoch; patience stops early."""
    from tiny_runs import tiny

    from synco.eval.protocols import finetune as protocol
    from synco.pipelines.pretrain import pretrain

    pretrain(tiny(tmp_path / "run", "train.epochs=0"))
    scores = iter([50.0, 60.0, 55.0, 60.0, 40.0, 70.0])  # validation top-1 of epochs 1-6
    evaluated = []

    def fake_evaluate(fabric, classifier, data, mean, std, cfg):
        validation = not evaluated or data is evaluated[0][0]  # the first call scores the validation split
        evaluated.append((data, classifier.head.weight.detach().clone()))
        return {"top1": next(scores) if validation else -1.0, "top5": 0.0}

    monkeypatch.setattr(protocol, "_evaluate", fake_evaluate)
    common = ["finetune.shots=2", "finetune.epochs=6", "finetune.batch_size=20", "finetune.seeds=[0]",
              "finetune.val_images=100"]
    summary = protocol.run_finetune(tmp_path / "run", overrides=[*common, f"finetune.out_dir={tmp_path / 'a'}"])
    (record,) = [r for r in read_metrics(tmp_path / "a" / "metrics.jsonl") if "seed" in r]
    assert record["finetune/val_curve"] == [50.0, 60.0, 55.0, 60.0, 40.0, 70.0] and record["finetune/best_epoch"] == 6
    assert summary["finetune/validation_images"] == 100 == len(evaluated[0][0])
    assert summary["finetune/labelled_images"] == 20
    assert torch.equal(evaluated[-1][1], evaluated[-2][1])  # the test saw the last (best) epoch's weights

    scores, evaluated[:] = iter([50.0, 60.0, 55.0, 60.0, 40.0, 70.0]), []
    protocol.run_finetune(tmp_path / "run", overrides=[*common, "finetune.patience=3", f"finetune.out_dir={tmp_path / 'b'}"])
    (record,) = [r for r in read_metrics(tmp_path / "b" / "metrics.jsonl") if "seed" in r]
    assert record["finetune/val_curve"] == [50.0, 60.0, 55.0, 60.0, 40.0]  # 3 epochs after epoch 2 without a better one
    assert record["finetune/best_epoch"] == 2 and record["finetune/val_top1"] == 60.0
    assert torch.equal(evaluated[-1][1], evaluated[1][1])  # the test saw epoch 2's weights, not epoch 5's
    assert not torch.equal(evaluated[-1][1], evaluated[-2][1])


def test_simclr_fine_tuning_feeds_two_views_of_each_image(tmp_path):
    from tiny_runs import tiny

    from synco.eval.protocols.finetune import run_finetune
    from synco.pipelines.pretrain import pretrain

    pretrain(tiny(tmp_path / "run", "train.epochs=0"))
    summary = run_finetune(tmp_path / "run", overrides=["finetune.shots=2", "finetune.epochs=1", "finetune.batch_size=20",
                                                        "finetune.seeds=[0]", "finetune.loss=simclr"])
    assert summary["finetune/loss"] == "simclr" and summary["finetune/contrastive_weight"] == 0.9
    assert 0 <= summary["finetune/top1_mean"] <= 100
