"""bf16 against float32, one training step at a time and layer by layer, both against a float64 reference.

For S batches of the recipe's training images (two augmented views each) the same method state computes its
loss and gradients in float64 (the reference), in float32, and under CPU bf16 autocast in the variants that
the main job's bf16 setting could differ by:

    fp32              float32, no autocast
    bf16              autocast; batch norm as in eager training (F.batch_norm)
    bf16-bn-form      autocast; the compiled split batch norm's function, output in bf16 (the compiled path)
    bf16-bn-fp32-out  autocast; the same function with its output in float32
    bf16-fp32-head    autocast for the backbone only; projection head, normalisation and loss in float32

Per variant it prints, averaged over the batches, the loss's difference from the reference and per layer
group the relative gradient error ||g - g64|| / ||g64||, the norm ratio ||g|| / ||g64|| (a value below 1 is a
systematic shrinkage, not noise) and the cosine; and the dtypes Fabric's bf16-mixed keeps parameters and
SGD's momentum in. Nothing is timed.

    .venv/bin/python benchmarks/bf16_parity.py                               # the untrained encoder
    .venv/bin/python benchmarks/bf16_parity.py --checkpoint runs/cifar10_synco/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
from pathlib import Path

import torch

os.environ.setdefault("SYNCO_DATA_ROOT", str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))

VARIANTS = ("fp32", "bf16", "bf16-bn-form", "bf16-bn-fp32-out", "bf16-fp32-head")


def layer_groups(method) -> dict[str, str]:
    """Parameter name -> its layer: "conv i" / "bn i" (backbone position i) or "head"."""
    groups = {}
    for module_name, module in method.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            name = f"{module_name}.{param_name}"
            if ".head" in module_name:
                groups[name] = "head"
            else:
                kind = "bn" if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) else "conv"
                groups[name] = f"{kind} {module_name.rsplit('.', 1)[-1]}"
    return groups


@contextlib.contextmanager
def replaced_forwards(replacements: dict):
    """``module.forward = function`` for each (module, function) of ``replacements`` inside the block."""
    originals = {module: module.forward for module in replacements}
    for module, forward in replacements.items():
        module.forward = forward
    try:
        yield
    finally:
        for module, forward in originals.items():
            module.forward = forward


def batchnorm_form(method, out_dtype):
    """Training-mode split batch norm through the compiled path's function (output in ``out_dtype``)."""
    from synco.models.batchnorm import SplitBatchNorm2d, _SplitBatchNormFunction

    def forward_of(module):
        return lambda x: _SplitBatchNormFunction.apply(x, module.weight, module.bias, module.num_splits, module.eps,
                                                       out_dtype)[0]

    return replaced_forwards({m: forward_of(m) for m in method.modules()
                              if isinstance(m, SplitBatchNorm2d) and m.num_splits > 1})


def float32_head(method):
    """The projection head (and what follows it) outside autocast, in float32."""
    def forward_of(head):
        plain = head.forward

        def forward(x):
            with torch.autocast("cpu", enabled=False):
                return plain(x.float())
        return forward

    return replaced_forwards({e.head: forward_of(e.head) for e in (method.encoder_q, method.encoder_k)})


def gradients(method, views, variant: str, seed: int) -> tuple[float, dict[str, torch.Tensor]]:
    from synco.data.batch import Batch
    from synco.methods import StepContext

    method = copy.deepcopy(method)
    dtype = torch.float64 if variant == "fp64" else torch.float32
    method = method.to(dtype)
    batch = Batch(views=(views[0].to(dtype), views[1].to(dtype)), index=torch.arange(views.shape[1]))
    g = torch.Generator().manual_seed(seed)
    context = StepContext(epoch=10**9, generator=g, shuffle_generator=torch.Generator().manual_seed(seed + 1))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant.startswith("bf16"))
    form = batchnorm_form(method, torch.float32 if variant == "bf16-bn-fp32-out" else None) \
        if variant in ("bf16-bn-form", "bf16-bn-fp32-out") else contextlib.nullcontext()
    head = float32_head(method) if variant == "bf16-fp32-head" else contextlib.nullcontext()
    with autocast, form, head:
        out = method.training_step(batch, context)
    out.loss.backward()
    return float(out.loss), {n: p.grad.double().clone() for n, p in method.named_parameters()
                                if p.grad is not None}


def fabric_dtypes() -> str:
    """The dtypes Fabric's bf16-mixed keeps for parameters and SGD's momentum after a step."""
    from lightning.fabric import Fabric

    fabric = Fabric(accelerator="cpu", devices=1, precision="bf16-mixed")
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model, optimizer = fabric.setup(model, optimizer)
    with fabric.autocast():
        loss = model(torch.randn(8, 4)).square().mean()
    fabric.backward(loss)
    optimizer.step()
    parameter = next(model.parameters())
    momentum = optimizer.state[parameter]["momentum_buffer"]
    return (f"Fabric bf16-mixed: parameters {parameter.dtype}, gradients {parameter.grad.dtype}, "
            f"SGD momentum {momentum.dtype}, loss under autocast {loss.dtype}")


def main() -> None:
    from synco.bench.steps import recipe_views
    from synco.compose import build_method
    from synco.config import load_config
    from synco.engine.checkpoint import load_checkpoint

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="configs/pretrain/cifar10/synco.yaml")
    parser.add_argument("--checkpoint", default=None, help="a run's checkpoint to measure at (default: untrained)")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    cfg = load_config(args.recipe, args.overrides)
    g = torch.Generator().manual_seed(0)
    views, data, _ = recipe_views(cfg, args.batch_size * args.batches, torch.device("cpu"), g)
    method = build_method(cfg, data.images.shape[1], len(data), 0)
    if args.checkpoint:
        method.load_state_dict(load_checkpoint(args.checkpoint)["model"])
    method.train()
    print(fabric_dtypes())
    print(f"{cfg.method.name}, {cfg.model.backbone}, batch {args.batch_size}, {args.batches} batches, "
          f"{'checkpoint ' + args.checkpoint if args.checkpoint else 'untrained encoder'}")
    groups = layer_groups(method)
    results = {v: [] for v in VARIANTS}
    for b in range(args.batches):
        part = views[:, b * args.batch_size:(b + 1) * args.batch_size]
        ref_loss, ref = gradients(method, part, "fp64", seed=b)
        for variant in VARIANTS:
            loss, grads = gradients(method, part, variant, seed=b)
            rows = {}
            for name, reference in ref.items():
                group = groups[name]
                diff, norm, ref_norm, dot = rows.get(group, (0.0, 0.0, 0.0, 0.0))
                grad = grads[name]
                rows[group] = (diff + float((grad - reference).square().sum()), norm + float(grad.square().sum()),
                               ref_norm + float(reference.square().sum()), dot + float((grad * reference).sum()))
            results[variant].append((loss - ref_loss, rows))
    for variant in VARIANTS:
        losses = [r[0] for r in results[variant]]
        print(f"\n{variant}: loss - loss64 = {sum(losses) / len(losses):+.2e} (mean over batches)")
        print(f"  {'layer group':<22}{'rel. error':>12}{'norm ratio':>12}{'cosine':>10}")
        for group in results[variant][0][1]:
            stats = [r[1][group] for r in results[variant]]
            error = sum((d / r) ** 0.5 for d, _, r, _ in stats) / len(stats)
            ratio = sum((n / r) ** 0.5 for _, n, r, _ in stats) / len(stats)
            cosine = sum(p / (n * r) ** 0.5 for _, n, r, p in stats) / len(stats)
            print(f"  {group:<22}{error:>12.4f}{ratio:>12.4f}{cosine:>10.4f}")


if __name__ == "__main__":
    main()
