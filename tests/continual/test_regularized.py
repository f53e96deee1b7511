"""CaSSLe and PNR on the MoCo-v2+ base: the step's loss is the papers' loss of the method's own tensors, the
frozen model never changes, and a task starts from the previous task's checkpoint."""

import pytest
import torch

from synco.compose import build_method
from synco.config import ConfigError, load_config
from synco.data.batch import Batch
from synco.functional import contrastive_distill_loss, mocov2plus_loss, pnr_moco_loss
from synco.methods import StepContext

BASE = ["model.backbone=small_cnn", "model.bn_splits=1", "model.shuffle_keys=false", "model.embedding_dim=16",
        "method.name=moco_v2", "method.symmetric=true", "method.queue_size=32", "train.batch_size=8"]


def build(kind, task=1):
    cfg = load_config(None, BASE + [f"continual.regularizer={kind}", f"continual.current_task={task}",
                                    "continual.predictor_hidden=32"])
    return build_method(cfg, in_channels=3, num_train_images=100, seed=0).double()


def views(seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(8, 3, 16, 16, generator=g, dtype=torch.float64) for _ in range(2))


@pytest.mark.parametrize("kind", ["cassle", "pnr"])
def test_the_step_is_the_papers_loss_of_its_own_tensors(kind):
    method = build(kind)
    x1, x2 = views()
    queues = torch.stack([method.base.queue.keys, method.base.second_queue.keys]).clone()
    old = torch.stack([method.old_queue.keys, method.old_second_queue.keys]).clone() if kind == "pnr" else None
    frozen_before = {k: v.clone() for k, v in method.frozen.state_dict().items()}
    out = method.training_step(Batch(views=(x1, x2), index=torch.arange(8)), StepContext())
    q1, q2, k1, k2 = out.base.query, out.base.query_view_2, out.base.key, out.base.key_view_2
    p1, p2 = (torch.nn.functional.normalize(method.predictor(q), dim=1) for q in (q1, q2))
    zb1, zb2 = out.frozen_1, out.frozen_2
    with torch.no_grad():
        torch.testing.assert_close(zb1, method.frozen(x1))  # the frozen encoder in eval mode gives the same
    if kind == "cassle":
        expected = mocov2plus_loss(q1, q2, k1, k2, queues, 0.2) + contrastive_distill_loss(p1, p2, zb1, zb2, 0.2)
    else:
        expected = pnr_moco_loss(q1, q2, k1, k2, p1, p2, zb1, zb2, queues, old, 0.2, 0.2)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-10)
    out.loss.backward()
    assert all(p.grad is None for p in method.frozen.parameters())
    assert any(p.grad is not None for p in method.predictor.parameters())
    method.after_step(out, Batch(views=(), index=torch.arange(8)))
    assert all(torch.equal(v, method.frozen.state_dict()[k]) for k, v in frozen_before.items())
    if kind == "pnr":
        torch.testing.assert_close(method.old_queue.keys[:8], zb1)  # frozen outputs become pseudo-negatives
    assert not method.frozen.training and method.base.training


def test_pnr_symmetry_ablation_reaches_the_loss():
    method = build_method(load_config(None, BASE + ["continual.regularizer=pnr", "continual.current_task=1",
                                                    "continual.predictor_hidden=32",
                                                    "continual.pseudo_negatives=stability"]), 3, 100, 0)
    assert method.pseudo_negatives == "stability"


def test_a_task_starts_from_the_previous_checkpoint_plain_or_regularised():
    plain = build_method(load_config(None, BASE), 3, 100, 0).double()
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(0.01)
    pnr = build("pnr")
    pnr.load_initial_state(plain.state_dict())  # task 0 was plain MoCo-v2+
    for key, value in plain.encoder_q.state_dict().items():
        assert torch.equal(pnr.base.encoder_q.state_dict()[key], value)
        assert torch.equal(pnr.frozen.state_dict()[key], value)  # the frozen copy is the previous encoder
    pnr.old_queue.keys.mul_(-1)
    following = build("pnr", task=2)
    following.load_initial_state(pnr.state_dict())  # task 2 restores the old queues of task 1
    assert torch.equal(following.old_queue.keys, pnr.old_queue.keys)
    assert torch.equal(following.frozen.state_dict()["head.0.weight"], pnr.base.encoder_q.state_dict()["head.0.weight"])


def test_regularisers_need_the_mocov2plus_base():
    with pytest.raises(ConfigError, match="continual.regularizer=pnr has no form for method.name=supcon"):
        load_config(None, ["method.name=supcon", "continual.regularizer=pnr"])
    with pytest.raises(ConfigError, match="method.symmetric=true"):
        load_config(None, ["method.name=moco_v2", "continual.regularizer=cassle"])
    assert type(build("cassle", task=0)).__name__ == "MoCo"  # task 0 is the plain base


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cassle", "pnr"])
def test_a_regularised_stream_runs_end_to_end(tmp_path, kind):
    from tiny_runs import tiny

    from synco.pipelines.continual import run_continual
    from synco.engine.checkpoint import load_checkpoint

    cfg = tiny(tmp_path, "continual.tasks=2", "continual.task_classes=[[0,1,2,3,4],[5,6,7,8,9]]", "train.epochs=1",
               "data.subset=512", "method.queue_size=128", "method.symmetric=true", "method.name=moco_v2",
               f"continual.regularizer={kind}", "eval.analysis_every=null")
    record = run_continual(cfg)
    assert len(record["continual/R_matrix"]) == 2
    state = load_checkpoint(tmp_path / "task_1" / "checkpoints" / "last.ckpt")["model"]
    assert any(k.startswith("frozen.") for k in state) and any(k.startswith("predictor.") for k in state)
    assert ("old_queue.keys" in state) == (kind == "pnr")
    from synco.engine.metrics import read_metrics

    epochs = [r for r in read_metrics(tmp_path / "task_1" / "metrics.jsonl") if "train/loss" in r]
    assert 1 <= epochs[0]["continual/queue_effective_rank"] <= 128  # the queues' diversity, logged per epoch
    assert ("continual/old_queue_effective_rank" in epochs[0]) == (kind == "pnr")


@pytest.mark.slow
def test_a_pnr_stream_stopped_at_each_task_boundary_resumes_to_the_straight_stream(tmp_path):
    """One epoch per task and train.stop_after=1: the run stops exactly at the task boundary, and the resumed
    task 1 must rebuild its frozen previous model and PNR's old queue from task 0's checkpoint."""
    from tiny_runs import tiny

    from synco.engine.checkpoint import load_checkpoint
    from synco.pipelines.continual import run_continual

    stream = ["continual.tasks=2", "continual.task_classes=[[0,1,2,3,4],[5,6,7,8,9]]", "train.epochs=1",
              "data.subset=512", "method.queue_size=128", "method.symmetric=true", "method.name=moco_v2",
              "continual.regularizer=pnr", "eval.analysis_every=null"]
    straight = run_continual(tiny(tmp_path / "straight", *stream))
    sliced = tiny(tmp_path / "sliced", *stream, "train.stop_after=1")
    record, stops = run_continual(sliced), 0
    while not record["finished"]:
        stops += 1
        assert stops < 3
        record = run_continual(sliced, resume=True)
    assert stops == 1
    assert record["continual/R_matrix"] == straight["continual/R_matrix"]
    for part in ("checkpoints/last.ckpt",):
        a = load_checkpoint(tmp_path / "straight" / "task_1" / part)
        b = load_checkpoint(tmp_path / "sliced" / "task_1" / part)
        assert any(k.startswith("frozen.") for k in a["model"]) and "old_queue.keys" in a["model"]
        assert a["model"].keys() == b["model"].keys()
        for name, value in a["model"].items():
            torch.testing.assert_close(b["model"][name], value, rtol=0, atol=0, msg=name)
        for i, state in a["optimizer"]["state"].items():
            torch.testing.assert_close(b["optimizer"]["state"][i]["momentum_buffer"], state["momentum_buffer"],
                                       rtol=0, atol=0)


@pytest.mark.parametrize("name", ["simclr", "byol"])
@pytest.mark.parametrize("kind", ["cassle", "pnr"])
def test_simclr_and_byol_bases(name, kind):
    from synco.functional import nt_xent_loss, pnr_byol_regularizer, pnr_simclr_loss, predictive_distill_loss
    from synco.functional import byol_loss

    settings = ["model.backbone=small_cnn", "model.bn_splits=1", "model.embedding_dim=16", f"method.name={name}",
                "train.batch_size=8", f"continual.regularizer={kind}", "continual.current_task=1",
                "continual.predictor_hidden=32"] + (["method.predictor_hidden=32"] if name == "byol" else [])
    method = build_method(load_config(None, settings), 3, 100, 0).double()
    x1, x2 = views(1)
    out = method.training_step(Batch(views=(x1, x2), index=torch.arange(8)), StepContext())
    z1, z2, zb1, zb2 = out.base.z1, out.base.z2, out.frozen_1, out.frozen_2
    g1, g2 = method.predictor(z1), method.predictor(z2)
    p1, p2 = (torch.nn.functional.normalize(g, dim=1) for g in (g1, g2))
    if name == "simclr":
        expected = (nt_xent_loss(z1, z2, 0.5) + contrastive_distill_loss(p1, p2, zb1, zb2, 0.2) if kind == "cassle"
                    else pnr_simclr_loss(p1, p2, z1, z2, zb1, zb2, 0.2))
    else:
        base = byol_loss(out.base.p1, out.base.p2, method.base.target(x1), method.base.target(x2))
        expected = base + (predictive_distill_loss(g1, g2, zb1, zb2) if kind == "cassle"
                           else pnr_byol_regularizer(g1, g2, zb1, zb2, 1.0, 0.5))
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-9)


def test_pnr_with_a_synco_base_puts_synthetic_negatives_in_the_plasticity_terms():
    settings = [s for s in BASE if s != "method.name=moco_v2"] + [
        "method.name=synco", "method.negatives.num_hard=8", "method.negatives.warmup_epochs=0",
        "continual.regularizer=pnr", "continual.current_task=1", "continual.predictor_hidden=32"]
    method = build_method(load_config(None, settings), 3, 100, 0).double()
    x1, x2 = views(2)
    queues = torch.stack([method.base.queue.keys, method.base.second_queue.keys]).clone()
    old = torch.stack([method.old_queue.keys, method.old_second_queue.keys]).clone()
    out = method.training_step(Batch(views=(x1, x2), index=torch.arange(8)),
                               StepContext(epoch=1, generator=torch.Generator().manual_seed(0)))
    assert out.base.synthetic_logits.shape[1] > 0 and out.base.synthetic_logits_view_2.shape == out.base.synthetic_logits.shape
    p1, p2 = (torch.nn.functional.normalize(method.predictor(q), dim=1) for q in (out.base.query, out.base.query_view_2))
    synthetic = (out.base.synthetic_logits, out.base.synthetic_logits_view_2)
    expected = pnr_moco_loss(out.base.query, out.base.query_view_2, out.base.key, out.base.key_view_2, p1, p2,
                             out.frozen_1, out.frozen_2, queues, old, 0.2, 0.2, "both", synthetic)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-10)


def test_the_family_is_declared_at_registration_not_inferred_from_the_class():
    """A new two-view contrastive method (a TwoViewContrastive, like SimCLR) gets no regulariser until its
    registration declares a family; one that declares a family it cannot feed fails on its first step."""
    import dataclasses

    from synco.continual.regularized import Regularized
    from synco.registry import METHODS

    hcl = METHODS.get("hcl")
    METHODS.register("undeclared_two_view", dataclasses.replace(hcl, continual_family=None))
    try:
        with pytest.raises(ConfigError, match="has no form for method.name=undeclared_two_view"):
            load_config(None, ["method.name=hcl", "method.name=undeclared_two_view", "continual.regularizer=cassle"])
    finally:
        METHODS.unregister("undeclared_two_view")
    cfg = load_config(None, ["method.name=hcl", "model.backbone=small_cnn", "model.embedding_dim=8", "model.bn_splits=1"])
    base = build_method(cfg, in_channels=3, num_train_images=16, seed=0)
    wrong = Regularized(base, "byol", "cassle", hidden=8)  # BYOL's form reads predictions HCL does not return
    views = tuple(torch.randn(4, 3, 8, 8) for _ in range(2))
    with pytest.raises(KeyError, match=r"\['p1', 'p2'\]"):
        wrong.training_step(Batch(views=views, index=torch.arange(4)), StepContext())


def test_a_new_regulariser_is_one_registry_entry_with_the_families_it_has_a_form_for():
    """A regulariser registered with a form for the simclr family only: the configuration offers it, refuses it
    for a MoCo base in one line, and the step is the form's loss of the base's own outputs."""
    from synco.continual.regularizers import Regularizer
    from synco.registry import REGULARIZERS

    def anchor(module, out, g1, g2, zb1, zb2):  # pull the predicted embeddings onto the frozen ones
        distill = (g1 - zb1).pow(2).sum(1).mean() + (g2 - zb2).pow(2).sum(1).mean()
        return out.loss + module.distill_weight * distill, distill

    REGULARIZERS.register("anchor", Regularizer({"simclr": anchor}))
    try:
        with pytest.raises(ConfigError, match="continual.regularizer=anchor has no form for method.name=moco_v2"):
            load_config(None, BASE + ["continual.regularizer=anchor"])
        cfg = load_config(None, ["method.name=simclr", "model.backbone=small_cnn", "model.embedding_dim=16",
                                 "model.bn_splits=1", "train.batch_size=8", "continual.regularizer=anchor",
                                 "continual.current_task=1", "continual.predictor_hidden=32",
                                 "continual.distill_weight=0.5"])
        method = build_method(cfg, 3, 100, 0).double()
        x1, x2 = views(3)
        out = method.training_step(Batch(views=(x1, x2), index=torch.arange(8)), StepContext())
        g1, g2 = method.predictor(out.base.z1), method.predictor(out.base.z2)
        expected = out.base.loss + 0.5 * ((g1 - out.frozen_1).pow(2).sum(1).mean()
                                          + (g2 - out.frozen_2).pow(2).sum(1).mean())
        assert out.loss.item() == pytest.approx(expected.item(), rel=1e-12)
        assert out.distill is not None and method.old_queue is None
    finally:
        REGULARIZERS.unregister("anchor")
