"""Linear probe: the training routine on known problems, and ``synco linear`` on a tiny pretrained run."""

import pytest
import torch

from synco.engine.metrics import read_metrics
from synco.eval.linear import mean_and_std, topk_accuracy, train_linear_on_features


def test_topk_accuracy_by_hand():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 1, 0])
    acc = topk_accuracy(logits, labels)
    assert acc["top1"] == pytest.approx(100 / 3)  # only the first row's argmax is right
    assert acc["top5"] == 100.0  # three classes: every label is within the top 3


def test_linearly_separable_features_are_learned_and_random_labels_are_not():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 4
    labels = torch.randint(0, 4, (800,), generator=g)
    features = centres[labels] + torch.randn(800, 16, generator=g)
    result = train_linear_on_features(features[:600], labels[:600], features[600:], labels[600:], 4,
                                      epochs=20, batch_size=64, lr=0.5)
    assert result["top1"] > 95
    shuffled = labels[torch.randperm(800, generator=g)]
    chance = train_linear_on_features(features[:600], shuffled[:600], features[600:], shuffled[600:], 4,
                                      epochs=20, batch_size=64, lr=0.5)
    assert chance["top1"] < 45


def test_mean_and_sample_std():
    assert mean_and_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_and_std([5.0]) == (5.0, 0.0)


@pytest.mark.slow
def test_synco_linear_on_a_tiny_run_reports_each_seed_and_their_mean(tmp_path, tiny_runs):
    from synco.eval.protocols.linear import BackboneChangedError, run_linear

    tiny_runs("train.epochs=1", "eval.baselines=false", copy_to=tmp_path / "run")
    summary = run_linear(tmp_path / "run", overrides=["linear.epochs=30", "linear.seeds=[0,1]", "linear.lr=0.5", "linear.batch_size=32"])
    records = read_metrics(tmp_path / "run" / "linear" / "metrics.jsonl")
    per_seed = [r for r in records if "seed" in r]
    assert [r["seed"] for r in per_seed] == [0, 1]
    mean, std = mean_and_std([r["linear/top1"] for r in per_seed])
    assert summary["linear/top1_mean"] == pytest.approx(mean) and summary["linear/top1_std"] == pytest.approx(std)
    assert summary["linear/top1_mean"] > 30  # Fashion-MNIST, 10 classes: well above chance even after 1 epoch
    with pytest.raises(FileExistsError, match="already holds linear-probe results"):
        run_linear(tmp_path / "run", overrides=["linear.epochs=1"])

    # The sanity check: an encoder that changes while it should be frozen is caught.
    from synco.eval.protocols import linear

    original = linear.frozen_encoder

    def drifting(*args, **kwargs):
        model = original(*args, **kwargs)

        def drift(module, inputs, output):  # returns None, so the output is kept
            next(module.buffers()).add_(1)

        model.register_forward_hook(drift)
        return model

    linear.frozen_encoder = drifting
    try:
        with pytest.raises(BackboneChangedError, match="changed during the linear probe"):
            run_linear(tmp_path / "run", overrides=["linear.epochs=1", f"linear.out_dir={tmp_path / 'other'}"])
    finally:
        linear.frozen_encoder = original


@pytest.mark.slow
def test_synco_knn_reproduces_the_runs_own_final_knn(tmp_path):
    from tiny_runs import assert_knn_recomputed, tiny

    from synco.pipelines.pretrain import pretrain
    from synco.eval.protocols.knn import run_knn

    # A bank smaller than the pretraining images: both must still normalise with the pretraining statistics.
    record = pretrain(tiny(tmp_path / "run", "train.epochs=1", "eval.baselines=false", "eval.train_subset=96"))
    again = run_knn(tmp_path / "run")
    assert again["eval/knn_top1"] == record["eval/knn_top1"] and again["eval/knn_top5"] == record["eval/knn_top5"]
    assert_knn_recomputed(again, tmp_path / "run", test_size=128)  # and both equal an independent computation
    other = run_knn(tmp_path / "run", overrides=["eval.knn_k=5", "eval.feature=embedding"])
    assert other["eval/knn_k"] == 5 and other["eval/knn_feature"] == "embedding"
    assert len(read_metrics(tmp_path / "run" / "knn" / "metrics.jsonl")) == 2
