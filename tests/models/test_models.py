import pytest
import torch
from torch import nn

from synco.models import SplitBatchNorm2d, build_backbone, convert_to_split_batchnorm, list_backbones
from synco.models.batchnorm import _SplitBatchNormFunction


def test_split_batchnorm_normalises_each_group_separately():
    x = torch.randn(8, 3, 4, 4, dtype=torch.float64) * 3 + 1
    bn = SplitBatchNorm2d(3, num_splits=2).double()
    out = bn(x)
    for start in (0, 1):  # interleaved groups, as in MoCo's SplitBatchNorm
        group = x[start::2]
        mean = group.mean(dim=(0, 2, 3), keepdim=True)
        var = group.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        torch.testing.assert_close(out[start::2], (group - mean) / torch.sqrt(var + bn.eps))


def test_split_batchnorm_with_one_split_and_in_eval_is_plain_batchnorm():
    x = torch.randn(6, 3, 4, 4)
    plain, split = nn.BatchNorm2d(3), SplitBatchNorm2d(3, num_splits=1)
    torch.testing.assert_close(split(x), plain(x))
    split3 = SplitBatchNorm2d(3, num_splits=3)
    split3(x)
    split3.eval()
    plain.eval()
    plain.running_mean.copy_(split3.running_mean)
    plain.running_var.copy_(split3.running_var)
    torch.testing.assert_close(split3(x), plain(x))


@pytest.mark.parametrize("splits", [2, 4])
def test_the_compiled_split_form_has_batch_norms_values_gradients_and_statistics(splits):
    """``_compiled_split_forward`` (its own closed-form backward) against the eager batch norm of the same groups,
    in float64: outputs, gradients of input, weight and bias, and the running statistics."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(8, 3, 5, 5, dtype=torch.float64, generator=g) * 2 + 1).requires_grad_(True)
    grad_out = torch.randn(8, 3, 5, 5, dtype=torch.float64, generator=g)
    eager = SplitBatchNorm2d(3, num_splits=splits).double()
    with torch.no_grad():
        eager.weight.normal_(generator=g)
        eager.bias.normal_(generator=g)
    compiled_form = SplitBatchNorm2d(3, num_splits=splits).double()
    compiled_form.load_state_dict(eager.state_dict())
    results = []
    for bn, forward in ((eager, eager), (compiled_form, lambda inputs: compiled_form._compiled_split_forward(inputs, splits))):
        out = forward(x)
        grads = torch.autograd.grad(out, (x, bn.weight, bn.bias), grad_out)
        results.append((out, *grads, bn.running_mean, bn.running_var))
    for expected, actual in zip(*results):
        torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


def test_the_compiled_split_form_keeps_float32_statistics_under_bf16():
    """Under bf16 autocast the activations arrive in bf16; the statistics are float32 (as batch norm's kernels
    accumulate), so they equal those of the same values in float32, and the output is bf16 again."""
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(8, 4, 6, 6, generator=g) * 3 + 5).to(torch.bfloat16).requires_grad_(True)
    bn = SplitBatchNorm2d(4, num_splits=2)
    out, mean, var = _SplitBatchNormFunction.apply(x, bn.weight, bn.bias, 2, bn.eps)
    reference = x.detach().float().view(4, 2, 4, 6, 6)  # image b = 2 i + j in group j
    torch.testing.assert_close(mean, reference.mean(dim=(0, 3, 4)), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(var, reference.var(dim=(0, 3, 4), unbiased=False), rtol=1e-5, atol=1e-6)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert x.grad.dtype == torch.bfloat16


def test_convert_keeps_weights_and_state_dict_names():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    nn.init.normal_(net[1].weight)
    names = set(net.state_dict())
    weight = net[1].weight.detach().clone()
    convert_to_split_batchnorm(net, 4)
    assert isinstance(net[1], SplitBatchNorm2d)
    assert set(net.state_dict()) == names
    assert torch.equal(net[1].weight, weight)


@pytest.mark.parametrize("name", ["small_cnn", "resnet18"])
@pytest.mark.parametrize("channels", [1, 3])
def test_backbones_give_features(name, channels):
    net = build_backbone(name, in_channels=channels, small_stem=True)
    out = net(torch.randn(2, channels, 28, 28))
    assert out.shape == (2, net.feature_dim)


def test_resnet_keeps_torchvision_names():
    import torchvision
    ours = build_backbone("resnet18").net.state_dict()
    theirs = torchvision.models.resnet18().state_dict()
    assert set(ours) == {k for k in theirs if not k.startswith("fc.")}


def test_unknown_backbone_lists_choices():
    with pytest.raises(ValueError, match="small_cnn"):
        build_backbone("vgg")
    assert "resnet50" in list_backbones()


def test_timm_backbones_by_alias_and_by_prefix():
    from synco.models.backbones import build_backbone, is_backbone

    vit = build_backbone("deit_small", in_channels=3, image_size=32)  # SynCo's second paper's DeiT-S
    assert vit.feature_dim == 384
    assert vit(torch.randn(2, 3, 32, 32)).shape == (2, 384)
    assert is_backbone("timm:resnet10t") and not is_backbone("timm:no_such_model")
    net = build_backbone("timm:resnet10t", in_channels=1)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, net.feature_dim)


def test_registries_feed_the_configuration_choices():
    from synco.config import ConfigError, load_config
    from synco.registry import BACKBONES, DATASETS, LOSSES, METHODS, Registry

    assert {"moco_v2", "mochi", "synco", "simclr"} <= set(METHODS.names())
    assert {"small_cnn", "resnet50", "vit_small", "deit_small", "swin_tiny"} <= set(BACKBONES.names())
    assert {"info_nce", "nt_xent"} <= set(LOSSES.names())
    for name in DATASETS.names():
        load_config(None, [f"data.dataset={name}", "data.augment_on=sample"])  # every registered name is allowed
    with pytest.raises(ConfigError, match="timm:<a timm model name>"):
        load_config(None, ["model.backbone=timm:no_such_model"])
    registry = Registry("thing")
    registry.register("a", 1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a", 2)
    with pytest.raises(KeyError, match="choose one of \\['a'\\]"):
        registry.get("b")


def test_pretrained_weights_are_for_timm_backbones_only():
    from synco.config import ConfigError, load_config
    from synco.models import build_backbone

    with pytest.raises(ValueError, match="not a timm backbone"):
        build_backbone("resnet18", pretrained=True)
    with pytest.raises(ConfigError, match="model.pretrained=true loads timm's weights"):
        load_config(None, ["model.pretrained=true", "model.backbone=small_cnn"])
    assert load_config(None, ["model.pretrained=true", "model.backbone=timm:vit_tiny_patch16_224"]).model.pretrained
