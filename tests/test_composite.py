"""The composite-model machinery: part-by-part training, resume per part, the bound as a sum of parts.

The composite here is the smallest real one: a coarse view v = x // 2 with an autoregressive prior
p(v) and a conditional autoregressive model p(x | v) that sees all of v through a non-causal net.
"""

import math
from functools import partial

import pytest
import torch
import torch.nn as nn

import pixelzoo
from pixelzoo import registry
from pixelzoo.models.chain import Chain, Level, Link, View
from pixelzoo.models.base import Part, TrainingPlan, Unit
from pixelzoo.models.autoregressive.conditional import ConditionalAR
from pixelzoo.training import load_run_model, resume_run, start_run


def coarse(x):
    return x // 2


class TwoLevel(Chain):
    """A chain of two levels, built as every composite is: levels, a view, two links, parts, stages."""

    def __init__(self, image_shape, num_levels, num_classes=None):
        k = (num_levels + 1) // 2
        tiny = dict(channels=8, n_layers=2, first_kernel_size=3)
        prior = pixelzoo.create_model("gated_pixelcnn", image_shape, k, num_classes, **tiny)
        ar = pixelzoo.create_model("gated_pixelcnn", image_shape, num_levels, num_classes, spatial_channels=4, **tiny)
        net = nn.Sequential(nn.Conv2d(image_shape[0], 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 4, 1))
        super().__init__([Level("image", tuple(image_shape), num_levels), Level("coarse", tuple(image_shape), k)],
                         [View("image", "coarse", coarse)],
                         [Link("prior", "coarse"), Link("conditional", "image", ("coarse",))],
                         {"prior": prior, "conditional": ConditionalAR(ar, _Scaled(net, k))},
                         [["prior", "conditional"]], num_classes)
        self.coarse_levels = k


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


def test_a_plain_model_and_a_composite_train_resume_and_sample_through_one_runner(two_level, tmp_path):
    from pixelzoo.training import PlanRunner

    plain = {"model": {"name": "gated_pixelcnn", "channels": 8, "n_layers": 2, "first_kernel_size": 3},
             "data": {"name": "digits"}, "train": dict(CONFIG["train"], steps=2)}
    for config, name in ((plain, "plain"), (CONFIG, "composite")):
        runner = start_run(config, tmp_path / name, progress=False, tensorboard=False)
        assert type(runner) is PlanRunner
        first = runner.train()
        config_more = resume_run(tmp_path / name, steps=5, progress=False, tensorboard=False)
        assert type(config_more) is PlanRunner
        more = config_more.train()
        if name == "plain":
            assert first["step"] == 2 and more["step"] == 5 and runner.plan.is_single
        else:   # steps=5 reaches every part: the conditional (4 steps by its train_parts) goes on to 5 too
            assert first["parts"]["prior"]["step"] == 3 and more["parts"]["prior"]["step"] == 5
            assert more["parts"]["conditional"]["step"] == 5
        model, _ = load_run_model(tmp_path / name)
        s = model.sample(2, y=torch.tensor([0, 1]), generator=torch.Generator().manual_seed(0))
        assert s.shape == (2, 1, 8, 8) and int(s.max()) < 17


class JointParts(Part, nn.ModuleDict):
    """Several parts held together as one unit's module, declaring the labels they take."""


class JointTwoLevel(TwoLevel):
    """A plan with a joint phase: the prior alone, then one unit updating both parts together (the
    seam AGAVE's joint training and De Fauw's per-level units use)."""

    def training_plan(self):
        # the joint unit declares the labels its class-conditional parts take (a Part with num_classes):
        # the trainer gives labels only to a unit that declares them
        joint = JointParts({"prior": self.parts["prior"], "conditional": self.parts["conditional"]})
        joint.num_classes = self.num_classes

        def loss(x, y=None, cond=None):
            a = self.parts["prior"].loss(cond.long(), y)["loss"]
            b = self.parts["conditional"].loss(x, y, cond=cond)["loss"]
            return {"loss": a + b, "prior": a.detach(), "conditional": b.detach()}

        return TrainingPlan([[Unit("prior", self.parts["prior"], partial(self.part_data, "prior"),
                                   directory="parts/prior")],
                             [Unit("joint", joint, partial(self.part_data, "conditional"), loss, "parts/joint")]])


@pytest.fixture
def joint_two_level():
    registry.register_model("test_joint_two_level", JointTwoLevel)
    yield
    registry._MODELS.pop("test_joint_two_level")


def test_a_unit_updates_several_parts_jointly(joint_two_level, tmp_path):
    config = {**CONFIG, "model": {"name": "test_joint_two_level"}, "train_parts": {}}
    result = start_run(config, tmp_path / "run", progress=False, tensorboard=False).train()
    assert result["parts"]["prior"]["step"] == 3 and result["parts"]["joint"]["step"] == 3
    assert math.isclose(result["test_bpd"], sum(result["test_bpd_parts"].values()), rel_tol=1e-6)
    rows = (tmp_path / "run" / "parts" / "joint" / "metrics.jsonl").read_text()
    assert "train_prior" in rows and "train_conditional" in rows
    # the joint unit's checkpoint holds both parts; the run loads it after the prior's (plan order)
    from pixelzoo.training.checkpoint import evaluation_weights

    joint = evaluation_weights(tmp_path / "run" / "parts" / "joint" / "checkpoint.safetensors")
    assert {k.split(".")[0] for k in joint} == {"prior", "conditional"}
    model, _ = load_run_model(tmp_path / "run")
    for k, v in model.parts["prior"].state_dict().items():
        assert torch.equal(v, joint[f"prior.{k}"])
    alone = evaluation_weights(tmp_path / "run" / "parts" / "prior" / "checkpoint.safetensors")
    assert any(not torch.equal(v, joint[f"prior.{k}"]) for k, v in alone.items())  # the joint phase moved it on
