"""The benchmark helpers measure what they claim (no timing assertions: speed lives in the benchmark)."""

import pytest
import torch

from synco.bench.heads import HeadSetting, run_heads
from synco.bench.measure import median_ms, peak_mib


def test_peak_memory_sees_a_temporary_allocation():
    def allocate():
        x = torch.ones(1024, 1024)  # 4 MiB, freed on return
        return float(x.sum())

    assert 3.9 < peak_mib(allocate, torch.device("cpu")) < 8


def test_median_ms_runs_each_function_and_reports_all():
    calls = {"a": 0, "b": 0}

    def bump(name):
        calls[name] += 1

    times = median_ms({"a": lambda: bump("a"), "b": lambda: bump("b")}, repeats=3, device=torch.device("cpu"), warmup=1)
    assert set(times) == {"a", "b"} and calls == {"a": 4, "b": 4}
    assert all(t >= 0 for t in times.values())


def test_heads_benchmark_rows_at_a_tiny_setting():
    rows = run_heads(HeadSetting(batch=32, queue=1024, dim=64, num_hard=16, counts=(8, 8, 8, 4, 4, 4), repeats=1))
    names = [r["head"] for r in rows]
    assert names[0] == "MoCo-v2" and names[1] == "official MoCo (code form)" and names[3] == "SynCo"
    assert "vector path" in names[4]
    assert rows[0]["time_ratio"] == 1.0 and rows[0]["memory_ratio"] == 1.0
    assert [r["synthetic"] for r in rows] == [0, 0, 16, 36, 36]
    # The vector path materialises (B, S, D) synthetic vectors; the dot path does not.
    assert rows[4]["peak_mib"] > rows[3]["peak_mib"]


def test_the_official_code_form_computes_the_plain_head_s_loss_and_gradient():
    import torch.nn.functional as F

    from synco.bench.heads import official_moco_head
    from synco.losses import InfoNCE
    from synco.memory import NegativeQueue
    from synco.methods import Encoder, MoCo

    g = torch.Generator().manual_seed(0)
    query0 = F.normalize(torch.randn(8, 16, generator=g, dtype=torch.float64), dim=1)
    key = F.normalize(torch.randn(8, 16, generator=g, dtype=torch.float64), dim=1)
    method = MoCo(Encoder(torch.nn.Identity(), torch.nn.Identity()), NegativeQueue(64, 16, generator=g),
                  InfoNCE(0.2)).double()
    query = query0.clone().requires_grad_(True)
    ours = method.loss(query, key, None, False).loss
    ours.backward()
    loss, grad = official_moco_head(query0, key, method.queue.keys.T.contiguous(), 0.2)()
    assert loss.item() == pytest.approx(ours.item(), rel=1e-12)
    assert torch.allclose(grad, query.grad, rtol=1e-10, atol=1e-12)


def test_head_profile_attributes_the_selection_to_synco_only():
    from synco.bench.heads import profile_heads

    rows = {r["op"]: r for r in profile_heads(HeadSetting(batch=32, queue=1024, dim=64, num_hard=16,
                                                          counts=(8, 8, 8, 4, 4, 4)), calls=2)}
    # MoCo-v2 never selects or draws noise; SynCo does both; both multiply q by the queue.
    assert rows["aten::topk"]["MoCo-v2"] == 0 and rows["aten::topk"]["SynCo"] > 0
    assert rows["aten::normal_"]["MoCo-v2"] == 0 and rows["aten::normal_"]["SynCo"] > 0
    assert rows["aten::bmm"]["MoCo-v2"] > 0 and rows["aten::bmm"]["SynCo"] > 0


def test_continual_step_rows_compare_the_regularisers_with_the_plain_base(tmp_path):
    from synco.bench.continual import continual_step_rows

    rows, setting = continual_step_rows(
        "configs/continual/cifar10_5tasks_mocov2plus.yaml", repeats=1,
        overrides=["data.dataset=fashion_mnist", "data.image_size=28", "train.batch_size=32", "method.queue_size=64",
                   "continual.predictor_hidden=32", f"data.cache_dir={tmp_path}"])
    assert [r["step"] for r in rows] == ["MoCo-v2+ (fine-tuning)", "MoCo-v2+ + CaSSLe", "MoCo-v2+ + PNR"]
    # The regularised rows are a later task's model (task 0 of any stream is plain MoCo-v2+).
    assert [r["method"] for r in rows] == ["MoCo", "Regularized(cassle)", "Regularized(pnr)"]
    assert rows[0]["time_ratio"] == 1.0 and rows[0]["memory_ratio"] == 1.0
    assert all(r["ms"] > 0 and r["peak_mib"] > 0 for r in rows)
    assert "symmetric=True" in setting and "K=64 per view" in setting
