"""The composite-model machinery: part-by-part training, resume per part, the bound as a sum of parts.

The composite here is the smallest real one: a coarse view v = x // 2 with an autoregressive prior
p(v) and a conditional autoregressive model p(x | v) that sees all of v through a non-causal net.
"""

import math

import pytest
import torch
import torch.nn as nn

import pixelzoo
from pixelzoo import registry
from pixelzoo.data import DataSplits, ImageDataset
from pixelzoo.models.composite import CompositeModel
from pixelzoo.models.conditional import ConditionalAR
from pixelzoo.training import load_run_model, resume_run, start_run


def coarse(x):
    return x // 2


class TwoLevel(CompositeModel):
    stages = [["prior", "conditional"]]

    def __init__(self, image_shape, num_levels, num_classes=None):
        super().__init__()
        self.image_shape, self.num_levels, self.num_classes = tuple(image_shape), num_levels, num_classes
        k = (num_levels + 1) // 2
        self.coarse_levels = k
        tiny = dict(channels=8, n_layers=2, first_kernel_size=3)
        prior = pixelzoo.create_model("gated_pixelcnn", image_shape, k, num_classes, **tiny)
        ar = pixelzoo.create_model("gated_pixelcnn", image_shape, num_levels, num_classes, spatial_channels=4, **tiny)
        net = nn.Sequential(nn.Conv2d(image_shape[0], 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 4, 1))
        self.parts = nn.ModuleDict({"prior": prior, "conditional": ConditionalAR(ar, _Scaled(net, k))})

    def part_data(self, name, splits, cache_dir=None):
        def view(d):
            if name == "prior":
                return ImageDataset(d.name + "/coarse", coarse(d.images), d.labels, self.coarse_levels, d.num_classes, d.source)
            return ImageDataset(d.name, d.images, d.labels, d.num_levels, d.num_classes, d.source,
                                extras={"cond": coarse(d.images).long()})

        return DataSplits(view(splits.train), view(splits.test))

    def log_prob_parts(self, x, y=None):
        v = coarse(x)
        return {"prior": self.parts["prior"].log_prob(v, y).flatten(1).sum(1),
                "conditional": self.parts["conditional"].log_prob(x, y, cond=v).flatten(1).sum(1)}

    def sample(self, n, y=None, **kw):
        v = self.parts["prior"].sample(n, y=y, **kw)
        return self.parts["conditional"].sample(n, y=y, cond=v, **kw)


class _Scaled(nn.Module):
    def __init__(self, net, levels):
        super().__init__()
        self.net, self.levels = net, levels

    def forward(self, v):
        return self.net(v.float() / (self.levels - 1))


@pytest.fixture
def two_level():
    registry.register_model("test_two_level", TwoLevel)
    yield
    registry._MODELS.pop("test_two_level")


CONFIG = {"model": {"name": "test_two_level"}, "data": {"name": "digits"},
          "train": {"steps": 3, "batch_size": 16, "log_every": 1, "eval_every": 0, "checkpoint_every": 2,
                    "num_samples": 4, "eval_images": 20},
          "train_parts": {"conditional": {"steps": 4}}}


def test_parts_train_in_sub_runs_and_the_bound_is_their_sum(two_level, tmp_path):
    trainer = start_run(CONFIG, tmp_path / "run", progress=False, tensorboard=False)
    result = trainer.train()
    for name, steps in (("prior", 3), ("conditional", 4)):
        assert result["parts"][name]["step"] == steps
        assert (tmp_path / "run" / "parts" / name / "checkpoint.safetensors").is_file()
    assert math.isclose(result["test_bpd"], sum(result["test_bpd_parts"].values()), rel_tol=1e-6)
    assert (tmp_path / "run" / "samples" / "final.png").is_file()
    model, _ = load_run_model(tmp_path / "run")
    x = torch.randint(0, 17, (3, 1, 8, 8))
    y = torch.tensor([0, 1, 2])
    with torch.no_grad():
        total = model.log_prob(x, y)
        expected = model.parts["prior"].log_prob(coarse(x), y).sum((1, 2, 3)) + model.parts["conditional"].log_prob(x, y, cond=coarse(x)).sum((1, 2, 3))
    torch.testing.assert_close(total, expected)
    s = model.sample(4, y=torch.arange(4))
    assert s.shape == (4, 1, 8, 8) and int(s.max()) < 17


def test_one_part_at_a_time_then_resume_the_rest(two_level, tmp_path):
    first = start_run(CONFIG, tmp_path / "run", parts=["prior"], progress=False, tensorboard=False).train()
    assert set(first["parts"]) == {"prior"} and "test_bpd" not in first
    rest = resume_run(tmp_path / "run", progress=False, tensorboard=False).train()
    assert rest["parts"]["prior"] == {"skipped": "already trained"}
    assert rest["parts"]["conditional"]["step"] == 4 and "test_bpd" in rest


def test_conditional_part_sees_all_of_its_condition_but_x_causally(two_level):
    model = TwoLevel((1, 4, 4), 6)
    cond_ar = model.parts["conditional"]
    x = torch.randint(0, 6, (2, 1, 4, 4))
    v = coarse(x).float().requires_grad_(True)
    spatial = cond_ar.cond_net.net(v / 2)
    params = cond_ar.ar.conditional_params(x, None, spatial)
    params[:, 0, :, 0, 0].sum().backward()
    assert v.grad[:, :, 1, 1].abs().sum() > 0  # the first pixel's distribution sees the condition below and right of it
