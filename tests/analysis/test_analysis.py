"""The negatives' statistics against hand computations and invariants, and their logging during pretraining."""

import math

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


def test_strategy_statistics_against_a_float64_loop():
    """Masses and maxima from explicit exponentials, at a temperature other than the default, with a masked entry."""
    g = torch.Generator().manual_seed(1)
    queue, synthetic = torch.rand(4, 20, generator=g, dtype=torch.float64), torch.rand(4, 6, generator=g, dtype=torch.float64)
    queue[0, 3] = torch.finfo(torch.float64).min  # a masked queue row weighs nothing
    positive = torch.rand(4, generator=g, dtype=torch.float64)
    strategy = torch.tensor([1, 1, 3, 3, 3, 6])
    t = 0.35
    stats = strategy_statistics(queue, synthetic, strategy, positive, temperature=t)
    real, per_type = [], {1: [], 3: [], 6: []}
    for b in range(4):
        real_sum = sum(math.exp(float(v) / t) for v in queue[b] if v > -1e300)
        syn = [math.exp(float(v) / t) for v in synthetic[b]]
        negative_sum = real_sum + sum(syn)
        real.append(real_sum / negative_sum)
        for kind, masses in per_type.items():
            masses.append(sum(e for e, s in zip(syn, strategy.tolist()) if s == kind) / negative_sum)
    assert stats["mass/real"] == pytest.approx(sum(real) / 4, rel=1e-12)
    for kind, name in ((1, "interpolate"), (3, "mixup"), (6, "adversarial")):
        assert stats[f"mass/{name}"] == pytest.approx(sum(per_type[kind]) / 4, rel=1e-12)
        columns = [i for i, s in enumerate(strategy.tolist()) if s == kind]
        expected_max = sum(max(float(synthetic[b, i]) for i in columns) for b in range(4)) / 4
        assert stats[f"max_synthetic_logit/{name}"] == pytest.approx(expected_max, rel=1e-12)
    assert stats["max_real_logit"] == pytest.approx(sum(float(queue[b].max()) for b in range(4)) / 4, rel=1e-12)
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
    from tiny_runs import tiny

    from synco.pipelines.pretrain import pretrain

    pretrain(tiny(tmp_path / "run", "train.epochs=2", "eval.baselines=false", "eval.analysis_every=1"))
    records = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "analysis/proxy_acc" in r]
    assert [r["epoch"] for r in records] == [1, 2]
    warmup, synco = records
    assert "analysis/mass/real" not in warmup and 0 <= warmup["analysis/proxy_acc"] <= 1
    masses = [v for k, v in synco.items() if k.startswith("analysis/mass/")]
    assert sum(masses) == pytest.approx(1.0) and len(masses) == 7
    assert 0 <= synco["analysis/fn_rate_hard"] <= 1 and 0 <= synco["analysis/fn_rate_sources"] <= 1
    assert len(synco["analysis/hardness_top"]) == 128  # the top min(1024, K) of a 128-row queue
    for record in records:  # held-out representation measures, every epoch
        assert 0 <= record["analysis/align"] <= 4 and record["analysis/uniform"] <= 0
        assert 1 <= record["analysis/effective_rank"] <= 128 and len(record["analysis/class_ratio"]) == 10
        assert record["analysis/heldout_images"] == 128  # eval.test_subset of the tiny run
        assert 0 < record["analysis/isotropy"] <= 1 and "analysis/loss/hscl/beta_1" in record
        assert "analysis/assumption1/tau_e-0.5" in record  # H-SCL's analyses, for a self-supervised run too


def test_alignment_and_uniformity_against_their_definitions():
    from synco.functional.representation import alignment, uniformity

    g = torch.Generator().manual_seed(2)
    x = torch.nn.functional.normalize(torch.randn(50, 8, generator=g, dtype=torch.float64), dim=1)
    y = torch.nn.functional.normalize(x + 0.1 * torch.randn(50, 8, generator=g, dtype=torch.float64), dim=1)
    assert alignment(x, y) == pytest.approx(sum(float(((x[i] - y[i]) ** 2).sum()) for i in range(50)) / 50)
    pairs = [float(torch.exp(-2 * ((x[i] - x[j]) ** 2).sum())) for i in range(50) for j in range(i + 1, 50)]
    assert uniformity(x) == pytest.approx(torch.tensor(sum(pairs) / len(pairs)).log().item())
    assert alignment(x, x) == 0


def test_effective_rank_of_collapsed_and_spread_embeddings():
    from synco.functional.representation import effective_rank

    g = torch.Generator().manual_seed(3)
    direction = torch.randn(1, 16, generator=g, dtype=torch.float64)
    collapsed = torch.randn(200, 1, generator=g, dtype=torch.float64) * direction  # rank 1
    assert effective_rank(collapsed) == pytest.approx(1.0, abs=1e-6)
    basis = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))[0]
    spread = torch.cat([basis, -basis])  # zero mean, all singular values equal
    assert effective_rank(spread) == pytest.approx(16.0)


def test_class_distance_ratios_grow_with_tighter_classes():
    from synco.functional.representation import class_distance_ratios

    g = torch.Generator().manual_seed(4)
    centres = torch.randn(3, 8, generator=g, dtype=torch.float64)
    labels = torch.arange(3).repeat_interleave(20)
    loose = class_distance_ratios(centres[labels] + 1.0 * torch.randn(60, 8, generator=g, dtype=torch.float64), labels)
    tight = class_distance_ratios(centres[labels] + 0.1 * torch.randn(60, 8, generator=g, dtype=torch.float64), labels)
    assert len(loose) == len(tight) == 3
    assert min(tight) > max(loose) > 0


@pytest.mark.slow
def test_synco_analyze_recomputes_the_analyses_on_a_checkpoint(tmp_path):
    from tiny_runs import tiny

    from synco.analysis.run import run_analysis
    from synco.pipelines.pretrain import checkpoint_path, pretrain

    pretrain(tiny(tmp_path / "synco", "train.epochs=2", "eval.baselines=false", "eval.analysis_every=null"))
    pretrain(tiny(tmp_path / "moco", "train.epochs=1", "eval.baselines=false", "method.name=moco_v2"))
    saved = checkpoint_path(tmp_path / "synco").read_bytes()
    settings = ["eval.analysis_images=100"]
    record = run_analysis(tmp_path / "synco", overrides=settings, batches=3)
    assert checkpoint_path(tmp_path / "synco").read_bytes() == saved  # the queue is read, never updated
    assert record["analysis/batches"] == 3 and record["analysis/synthesized"] and record["checkpoint_epoch"] == 2
    assert len(record["analysis/hardness_top"]) == 128  # min(1024, K = 128)
    strategies = ("interpolate", "extrapolate", "mixup", "noise", "perturb", "adversarial")
    total = record["analysis/mass/real"] + sum(record[f"analysis/mass/{s}"] for s in strategies)
    assert total == pytest.approx(1, abs=1e-5)
    assert record["analysis/proxy_acc"] <= record["analysis/proxy_acc_real"]  # more negatives: never easier
    for key in ("fn_rate_hard", "fn_rate_sources", "align", "uniform", "effective_rank", "class_ratio_mean"):
        assert f"analysis/{key}" in record
    assert 0 <= record["analysis/fn_rate_hard"] <= 1 and record["analysis/heldout_images"] == 100
    again = run_analysis(tmp_path / "synco", overrides=settings, batches=3)
    other = run_analysis(tmp_path / "synco", overrides=settings, batches=3, seed=1)
    assert again == record and other["analysis/mass/real"] != record["analysis/mass/real"]
    assert len(read_metrics(tmp_path / "synco" / "analysis" / "metrics.jsonl")) == 3

    moco = run_analysis(tmp_path / "moco", overrides=settings, batches=2)
    assert not moco["analysis/synthesized"] and not any(k.startswith("analysis/mass/") for k in moco)
    assert moco["analysis/proxy_acc"] == moco["analysis/proxy_acc_real"]
    with pytest.raises(ValueError, match="batches must be at least 1"):
        run_analysis(tmp_path / "moco", batches=0)


def test_negative_log_ignores_the_queues_random_initial_rows():
    """While the queue still holds its random start (image index -1) those rows have no class: they count
    neither as false negatives nor as true ones. Looking up label[-1] (the last image's) would count them."""
    from synco.analysis.log import NegativeLog
    from synco.negatives.module import SyntheticSources

    labels = torch.tensor([0, 1, 2, 1, 0, 2, 1])  # 7 images; the last one is of class 1
    log = NegativeLog(temperature=0.2, labels=labels, top=4)
    queue_image_index = torch.tensor([3, -1, 5, -1, 0, 6])  # rows 1 and 3 still random
    index = torch.tensor([1, 4])  # query classes 1 and 0
    hardest = torch.tensor([[0, 1, 3, 2], [4, 5, 2, 0]])
    sources = SyntheticSources(
        hardest=hardest, index=torch.tensor([[[1, -1], [0, 3]], [[4, -1], [5, 0]]]), strategy=torch.tensor([1, 3]))
    from synco.methods import QueueOutput

    g = torch.Generator().manual_seed(0)
    out = QueueOutput(loss=torch.zeros(()), key=torch.zeros(2, 4), positive=torch.rand(2, generator=g, dtype=torch.float64),
                      queue_logits=torch.rand(2, 6, generator=g, dtype=torch.float64),
                      synthetic_logits=torch.rand(2, 2, generator=g, dtype=torch.float64), sources=sources)
    log.observe(out, index, queue_image_index)
    record = log.epoch_record()
    # Query 0 (class 1): hardest rows 0 (image 3, class 1: hit), 2 (image 5, class 2); rows 1, 3 unknown.
    # Query 1 (class 0): rows 4 (image 0, class 0: hit), 5 (image 6, class 1), 2 (class 2), 0 (class 1).
    assert record["analysis/fn_rate_hard"] == pytest.approx(2 / 6)  # label[-1] would make it 4 / 8
    # Sources with a known class: query 0 -> row 0 (hit); query 1 -> rows 4 (hit), 5 and 0 (class 1).
    assert record["analysis/fn_rate_sources"] == pytest.approx(2 / 4)  # label[-1]: 4 / 6
    assert record["analysis/observed_steps"] == 1 and log.epoch_record() == {}  # reset after the record


def test_effective_rank_of_a_hand_made_matrix():
    """Centred rows (+-3, 0), (0, +-1) have singular values sqrt(18), sqrt(2): p = (3/4, 1/4)."""
    from synco.functional.representation import effective_rank

    x = torch.tensor([[3.0, 0], [-3, 0], [0, 1], [0, -1]], dtype=torch.float64)
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))  # 1.7548
    assert effective_rank(x) == pytest.approx(expected, rel=1e-12)
    assert effective_rank(x + torch.tensor([5.0, -2.0], dtype=torch.float64)) == pytest.approx(expected, rel=1e-12)


def test_class_distance_ratios_against_a_float64_loop():
    """Unsorted labels, unequal classes, rows not of unit norm (the function normalises them)."""
    from synco.functional.representation import class_distance_ratios

    g = torch.Generator().manual_seed(5)
    x = torch.randn(17, 4, generator=g, dtype=torch.float64) * torch.rand(17, 1, generator=g, dtype=torch.float64).add(0.5)
    labels = torch.tensor([2, 0, 1, 2, 2, 0, 1, 1, 1, 0, 2, 1, 0, 2, 1, 1, 0])
    unit = [v / math.sqrt(float(v @ v)) for v in x]

    def distance(i, j):
        return math.sqrt(float(((unit[i] - unit[j]) ** 2).sum()))

    expected = []
    for c in (0, 1, 2):
        inside = [i for i in range(17) if labels[i] == c]
        outside = [i for i in range(17) if labels[i] != c]
        intra = sum(distance(i, j) for i in inside for j in inside if i != j) / (len(inside) * (len(inside) - 1))
        inter = sum(distance(i, j) for i in inside for j in outside) / (len(inside) * len(outside))
        expected.append(inter / intra)
    assert class_distance_ratios(x, labels) == pytest.approx(expected, rel=1e-10)
