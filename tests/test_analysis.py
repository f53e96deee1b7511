"""The negatives' statistics against hand computations and invariants, and their logging during pretraining."""

import pytest
import torch

from synco.analysis.negatives import false_negative_rates, hardness_profile, proxy_accuracy, strategy_statistics
from synco.engine.metrics import read_metrics


def test_proxy_accuracy_by_hand():
    positive = torch.tensor([0.9, 0.5, 0.7], dtype=torch.float64)
    queue = torch.tensor([[0.1, 0.8], [0.6, 0.2], [0.3, 0.1]], dtype=torch.float64)
    synthetic = torch.tensor([[0.95], [0.1], [0.2]], dtype=torch.float64)
    acc = proxy_accuracy(positive, queue, synthetic)
    assert acc["proxy_acc_real"] == pytest.approx(2 / 3)  # query 1 loses to a real negative
    assert acc["proxy_acc"] == pytest.approx(1 / 3)  # query 0 also loses to its synthetic negative


def test_hardness_profile_is_the_sorted_softmax_of_the_negatives():
    g = torch.Generator().manual_seed(0)
    positive, queue = torch.rand(5, generator=g, dtype=torch.float64), torch.rand(5, 30, generator=g, dtype=torch.float64)
    profile = hardness_profile(positive, queue, temperature=0.2, top=10)
    expected = []
    for b in range(5):
        z = torch.cat([positive[b : b + 1], queue[b]]) / 0.2
        p = torch.exp(z - z.logsumexp(0))[1:]
        expected.append(p.sort(descending=True).values[:10])
    torch.testing.assert_close(profile, torch.stack(expected).mean(0))
    assert (profile[:-1] >= profile[1:]).all()


def test_strategy_masses_add_up_and_maxima_are_per_strategy():
    g = torch.Generator().manual_seed(1)
    queue, synthetic = torch.rand(4, 20, generator=g, dtype=torch.float64), torch.rand(4, 6, generator=g, dtype=torch.float64)
    positive = torch.rand(4, generator=g, dtype=torch.float64)
    strategy = torch.tensor([1, 1, 3, 3, 3, 6])
    stats = strategy_statistics(queue, synthetic, strategy, positive, temperature=0.2)
    assert stats["mass/real"] + stats["mass/interpolate"] + stats["mass/mixup"] + stats["mass/adversarial"] == (
        pytest.approx(1.0))
    assert stats["max_synthetic_logit/mixup"] == pytest.approx(synthetic[:, 2:5].max(1).values.mean().item())
    assert "mass/noise" not in stats  # strategies that are off are not reported


def test_false_negative_rates_by_hand():
    queue_labels = torch.tensor([0, 1, 1, -1, 2])
    query_labels = torch.tensor([1, 0, -1])
    hardest = torch.tensor([[1, 2, 3], [0, 4, 3], [0, 1, 2]])  # query 2 is unlabelled: ignored
    sources = torch.tensor([[[1, -1], [0, 2]], [[4, -1], [4, 0]], [[0, -1], [1, -1]]])
    rates = false_negative_rates(query_labels, hardest, sources, queue_labels)
    assert rates["fn_rate_hard"] == pytest.approx(3 / 4)  # known-label rows: 1,2 (query 0) and 0,4 (query 1)
    # sources used: rows 1, 0, 2 for query 0 (labels 1, 0, 1: two hits), rows 4, 4, 0 for query 1 (2, 2, 0: one)
    assert rates["fn_rate_sources"] == pytest.approx(3 / 6)


@pytest.mark.slow
def test_statistics_are_logged_each_epoch_during_pretraining(tmp_path):
    from test_pretrain import tiny

    from synco.engine.pretrain import pretrain

    pretrain(tiny(tmp_path / "run", "train.epochs=2", "eval.baselines=false", "eval.analysis_every=1"))
    records = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "analysis/proxy_acc" in r]
    assert [r["epoch"] for r in records] == [1, 2]
    warmup, synco = records
    assert "analysis/mass/real" not in warmup and 0 <= warmup["analysis/proxy_acc"] <= 1
    masses = [v for k, v in synco.items() if k.startswith("analysis/mass/")]
    assert sum(masses) == pytest.approx(1.0) and len(masses) == 7
    assert 0 <= synco["analysis/fn_rate_hard"] <= 1 and 0 <= synco["analysis/fn_rate_sources"] <= 1
    assert len(synco["analysis/hardness_top"]) == 128  # the top min(1024, K) of a 128-row queue
