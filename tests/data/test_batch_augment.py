import torch

from synco.data.batch_augment import BatchAugment, _hsv_to_rgb, _rgb_to_hsv


def test_shapes_range_and_reproducibility():
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    aug = BatchAugment(24, [0.5] * 3, [0.25] * 3)
    a = aug(images, torch.Generator().manual_seed(0))
    b = aug(images, torch.Generator().manual_seed(0))
    c = aug(images, torch.Generator().manual_seed(1))
    assert a.shape == (16, 3, 24, 24) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    pixels = a * 0.25 + 0.5
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6


def test_grayscale_images_keep_one_channel():
    out = BatchAugment(28, [0.3], [0.3])(torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8))
    assert out.shape == (4, 1, 28, 28)


def test_full_crop_without_colour_is_a_resample_of_the_image():
    """With area 1 and aspect 1 the crop covers the image: only flips remain."""
    images = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    aug = BatchAugment(8, [0.0] * 3, [1.0] * 3, crop_min_scale=1.0, jitter_p=0.0, grayscale_p=0.0)
    import synco.data.batch_augment as ba
    original = ba._uniform
    ba._uniform = lambda shape, low, high, g, d: torch.full((shape,), (low + high) / 2) if low < 0 else torch.full((shape,), high)
    try:
        out = aug(images, torch.Generator().manual_seed(0))
    finally:
        ba._uniform = original
    x = images.float() / 255
    for i in range(8):
        assert torch.allclose(out[i], x[i], atol=1e-5) or torch.allclose(out[i], x[i].flip(-1), atol=1e-5)


def test_hsv_round_trip():
    rgb = torch.rand(4, 3, 5, 5)
    torch.testing.assert_close(_hsv_to_rgb(_rgb_to_hsv(rgb)), rgb, atol=1e-5, rtol=0)


def test_blur_matches_a_loop_convolution_and_preserves_constants():
    import math

    from synco.data.batch_augment import gaussian_blur

    x = torch.rand(2, 3, 9, 9, dtype=torch.float64)
    out = gaussian_blur(x, 1.0, (1.0, 1.0), 3, torch.Generator().manual_seed(0))
    w = [math.exp(-1 / 2), 1.0, math.exp(-1 / 2)]
    w = [v / sum(w) for v in w]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    i, j = 4, 5
    expected = sum(w[a] * w[b] * padded[0, 1, i + a, j + b] for a in range(3) for b in range(3))
    assert abs(out[0, 1, i, j].item() - expected.item()) < 1e-12
    const = torch.full((1, 1, 8, 8), 0.3, dtype=torch.float64)
    torch.testing.assert_close(gaussian_blur(const, 1.0, (0.5, 2.0), 5, None), const)


def test_blur_is_on_for_large_images_only():
    assert BatchAugment(96, [0.5] * 3, [0.2] * 3).blur_p == 0.5
    assert BatchAugment(32, [0.5] * 3, [0.2] * 3).blur_p == 0.0
    out = BatchAugment(64, [0.5] * 3, [0.2] * 3)(torch.randint(0, 256, (4, 3, 80, 80), dtype=torch.uint8))
    assert out.shape == (4, 3, 64, 64)


def test_without_crop_only_flips_when_colour_operations_are_off():
    from synco.data.batch_augment import BatchAugment

    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    augment = BatchAugment(8, [0.0] * 3, [1.0] * 3, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, crop=False)
    out = augment(images, torch.Generator().manual_seed(0))
    x = images.float() / 255
    flipped = torch.isclose(out, x.flip(-1)).flatten(1).all(1)
    same = torch.isclose(out, x).flatten(1).all(1)
    assert (flipped | same).all() and flipped.any() and same.any()
