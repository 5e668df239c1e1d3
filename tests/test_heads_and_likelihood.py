"""The categorical head and bits/dim against hand computations; the model's distribution sums to one."""

import itertools
import math

import torch

import pixelzoo
from pixelzoo.data import ImageDataset
from pixelzoo.evaluation import dataset_bits_per_dim
from pixelzoo.heads import CategoricalHead


def test_categorical_log_prob_hand_computed():
    head = CategoricalHead(num_levels=3, channels=1)
    logits = torch.tensor([1.0, 2.0, 0.5]).view(1, 1, 3, 1, 1)
    for level in range(3):
        x = torch.tensor([[[[level]]]])
        expected = logits.view(3)[level] - math.log(math.e ** 1 + math.e ** 2 + math.e ** 0.5)
        assert abs(head.log_prob(logits, x).item() - expected.item()) < 1e-6


def test_categorical_sample_temperature_zero_is_argmax():
    head = CategoricalHead(num_levels=4, channels=1)
    sp = torch.tensor([[0.1, 3.0, 0.2, -1.0], [2.0, 0.0, 0.0, 5.0]])
    assert head.draw(sp, temperature=0).tolist() == [1, 3]


def _all_images(shape, levels):
    c, h, w = shape
    return torch.tensor(list(itertools.product(range(levels), repeat=c * h * w))).view(-1, c, h, w)


def test_model_distribution_sums_to_one_grey_and_colour():
    for shape, levels in [((1, 2, 2), 3), ((3, 1, 2), 2)]:
        model = pixelzoo.create_model("gated_pixelcnn", image_shape=shape, num_levels=levels, channels=6, n_layers=2).eval()
        x = _all_images(shape, levels)
        with torch.no_grad():
            total = model.log_prob(x).double().flatten(1).sum(1).exp().sum().item()
        assert abs(total - 1.0) < 1e-5, total


def test_sampler_matches_model_distribution():
    """Empirical frequencies of many samples are close (total variation) to the model's exact probabilities."""
    for shape, levels in [((1, 2, 2), 3), ((3, 1, 2), 2)]:
        model = pixelzoo.create_model("gated_pixelcnn", image_shape=shape, num_levels=levels, channels=6, n_layers=2).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(3)  # a peaked, far-from-uniform distribution
        x = _all_images(shape, levels)
        with torch.no_grad():
            probs = model.log_prob(x).double().flatten(1).sum(1).exp()
        n = 6000
        s = model.sample(n, generator=torch.Generator().manual_seed(0))
        index = (s.flatten(1) * (levels ** torch.arange(s[0].numel() - 1, -1, -1))).sum(1)
        freq = torch.bincount(index, minlength=len(x)).double() / n
        tv = 0.5 * (freq - probs).abs().sum().item()
        # expected TV of an exact sampler is about sqrt(M / n) / 2.5 here; a wrong order or off-by-one gives far more
        assert tv < 0.05, tv


def test_dataset_bits_per_dim_exact_denominator():
    model = pixelzoo.create_model("gated_pixelcnn", image_shape=(1, 3, 3), num_levels=4, channels=4, n_layers=2).eval()
    images = torch.randint(0, 4, (10, 1, 3, 3), dtype=torch.uint8)
    data = ImageDataset("toy", images, None, 4, None, "test")
    with torch.no_grad():
        nats = -model.log_prob(images.long()).double().sum().item()
    expected = nats / (10 * 9 * math.log(2))
    for batch_size in (1, 3, 4, 10, 64):  # 10 is not a multiple of 3 or 4: the last batch must count once
        assert abs(dataset_bits_per_dim(model, data, batch_size=batch_size) - expected) < 1e-6
    per_image = model.bits_per_dim(images.long())
    assert abs(per_image.double().mean().item() - expected) < 1e-5


def test_loss_bpd_is_nats_over_ln2():
    model = pixelzoo.create_model("gated_pixelcnn", image_shape=(1, 4, 4), num_levels=5, channels=4, n_layers=2)
    x = torch.randint(0, 5, (3, 1, 4, 4))
    out = model.loss(x)
    assert abs(out["bpd"].item() - out["loss"].item() / math.log(2)) < 1e-6
    assert abs(out["bpd"].item() - model.bits_per_dim(x).mean().item()) < 1e-5


def test_tiny_model_overfits_four_images():
    from pixelzoo.data import load_dataset

    x = load_dataset("digits").train.images[:4].long()
    model = pixelzoo.create_model("gated_pixelcnn", image_shape=(1, 8, 8), num_levels=17, channels=16, n_layers=4, first_kernel_size=5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = model.loss(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model.eval().bits_per_dim(x).mean().item() < 0.5
