import math

import torch

from synco.eval import knn_accuracy, knn_predict


def test_knn_predict_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    bank = torch.nn.functional.normalize(torch.randn(30, 5, generator=g, dtype=torch.float64), dim=1)
    labels = torch.randint(4, (30,), generator=g)
    feats = torch.nn.functional.normalize(torch.randn(6, 5, generator=g, dtype=torch.float64), dim=1)
    scores = knn_predict(feats, bank, labels, 4, k=7, temperature=0.1)
    for b in range(6):
        sims = sorted(((float(feats[b] @ bank[m]), int(labels[m])) for m in range(30)), reverse=True)[:7]
        expected = [sum(math.exp(s / 0.1) for s, c in sims if c == cls) for cls in range(4)]
        torch.testing.assert_close(scores[b], torch.tensor(expected, dtype=torch.float64))


def test_knn_accuracy_on_separable_clusters_and_k_larger_than_bank():
    centers = torch.eye(3)
    bank = centers.repeat_interleave(4, 0) + 0.01 * torch.randn(12, 3)
    test = centers + 0.01 * torch.randn(3, 3)
    result = knn_accuracy(bank, torch.arange(3).repeat_interleave(4), test, torch.arange(3), 3, k=200)
    assert result == {"top1": 100.0, "top5": 100.0}
