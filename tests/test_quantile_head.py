"""The quantile head as a head like the others: in HEADS, with per-position inputs (tau) it draws
itself, on any registered trunk through the generic builder, and with a continuous option."""

import pytest
import torch

import pixelzoo
from pixelzoo.errors import ConfigError
from pixelzoo.heads import HEADS, QuantileHead, create_head
from pixelzoo.models.autoregressive.model import AutoregressiveModel, build_autoregressive
from pixelzoo.models.autoregressive.trunks import list_trunks

GATED = dict(channels=12, n_layers=3, kernel_size=3, first_kernel_size=5)
TRUNK_OPTIONS = {
    "gated_pixelcnn": GATED,
    "pixelsnail": dict(channels=12, n_blocks=2, attention_every=1, heads=2, out_res_blocks=1),
    "pixelcnnpp": dict(nr_resnet=1, nr_filters=8, dropout=0.0),
    "made": dict(hidden=48, features=4),
}


# ---------------------------------------------------------------------------- the head alone
def test_quantile_is_in_heads_and_create_head_takes_its_options():
    assert HEADS["quantile"] is QuantileHead
    head = create_head("quantile", 9, 3, kappa=0.5, tau_embedding="cosine", n_cos=5)
    assert (head.kappa, head.tau_features, head.extra_inputs) == (0.5, 5, ("tau",))
    assert not head.has_likelihood and not head.continuous and head.loss_name == "quantile_loss"
    assert head.input_channels() == 15
    assert head.input_groups().tolist() == [0] * 5 + [1] * 5 + [2] * 5
    tau = torch.rand(2, 3, 4, 4)
    assert head.embed_inputs(tau=tau).shape == (2, 15, 4, 4)
    torch.testing.assert_close(create_head("quantile", 9, 3, tau_embedding="linear").embed_inputs(tau=tau), 2 * tau - 1)
    with pytest.raises(ConfigError, match="bad options"):
        create_head("quantile", 9, 3, bogus=1)
    with pytest.raises(ConfigError, match="tau_embedding"):
        create_head("quantile", 9, 3, tau_embedding="sine")


def test_sampling_inputs_are_the_tau_range_and_training_inputs_uniform():
    head = create_head("quantile", 9, 3)
    for t in (0.0, 0.3, 1.0):
        tau = head.sampling_inputs((50, 3, 2, 2), t, torch.Generator().manual_seed(0))["tau"]
        u = torch.rand((50, 3, 2, 2), generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(tau, 0.5 + t * (u - 0.5))
        assert float(tau.min()) >= 0.5 - t / 2 and float(tau.max()) <= 0.5 + t / 2
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match="tau range"):
            head.sampling_inputs((1, 3, 2, 2), bad, None)
    x = torch.randint(0, 9, (4, 3, 2, 2))
    torch.manual_seed(3)
    tau = head.training_inputs(x)["tau"]
    torch.manual_seed(3)
    assert torch.equal(tau, torch.rand(x.shape))


def test_check_inputs_names_what_is_wrong():
    head = create_head("quantile", 9, 1)
    x = torch.zeros(2, 1, 3, 3)
    head.check_inputs({"tau": torch.rand(x.shape)}, x)
    with pytest.raises(ConfigError, match="needs tau"):
        head.check_inputs({}, x)
    with pytest.raises(ConfigError, match="unknown"):
        head.check_inputs({"tau": torch.rand(x.shape), "z": x}, x)
    with pytest.raises(ConfigError, match="shape"):
        head.check_inputs({"tau": torch.rand(2, 1, 3, 2)}, x)
    with pytest.raises(ConfigError, match="unknown"):
        create_head("categorical", 9, 1).check_inputs({"tau": torch.rand(x.shape)}, x)


def test_continuous_head_values_are_the_raw_output_unrounded():
    raw = torch.tensor([[-3.7], [0.25], [12.125], [1.0]]).view(4, 1, 1, 1)
    head = create_head("quantile", 4, 1, continuous=True)
    sp = head.subpixel_params(raw, torch.zeros_like(raw))
    assert sp.shape == (4, 1, 1, 1, 1)
    torch.testing.assert_close(sp[:, 0, 0], raw[:, 0])
    draw = head.draw(sp[:, :, :, 0, 0].reshape(4, 1))
    assert draw.is_floating_point()
    assert draw.tolist() == [-3.7000000476837158, 0.25, 12.125, 1.0]  # neither rounded nor clipped to [0, 3]
    discrete = create_head("quantile", 4, 1)
    assert discrete.draw(discrete.subpixel_params(raw, raw)[:, :, :, 0, 0].reshape(4, 1)).tolist() == [0, 2, 3, 3]


# ---------------------------------------------------------------------------- on any trunk
def test_every_trunk_is_registered_and_the_generic_builder_takes_any_head():
    assert {"gated_pixelcnn", "pixelsnail", "pixelcnnpp", "made"} <= set(list_trunks())
    for trunk, options in TRUNK_OPTIONS.items():
        for head in ("categorical", "logistic_mixture", "quantile"):
            model = build_autoregressive(trunk, (3, 4, 4), 5, 2, head=head, out_hidden=12, **options)
            assert isinstance(model, AutoregressiveModel) and model.trunk.trunk_name == trunk
            x, y = torch.randint(0, 5, (2, 3, 4, 4)), torch.tensor([0, 1])
            assert torch.isfinite(model.loss(x, y)["loss"])
            assert model.tau_in_trunk is (head == "quantile" and trunk != "pixelcnnpp")
    with pytest.raises(ConfigError, match="unknown trunk"):
        build_autoregressive("transformer", (1, 4, 4), 5)


def test_pixelsnail_with_the_quantile_head_is_a_quantile_model():
    torch.manual_seed(0)
    model = pixelzoo.create_model("pixelsnail", (3, 3, 4), 7, 2, head="quantile", head_options={"n_cos": 4},
                                  **{k: v for k, v in TRUNK_OPTIONS["pixelsnail"].items()}, out_hidden=12).eval()
    assert not model.has_likelihood and model.tau_in_trunk
    x, y = torch.randint(0, 7, (2, 3, 3, 4)), torch.tensor([0, 1])
    assert set(model.loss(x, y)) == {"loss", "quantile_loss"}
    with pytest.raises(ConfigError, match="no likelihood"):
        model.log_prob(x, y)
    s = model.sample(2, y=y, temperature=0.7, generator=torch.Generator().manual_seed(2))
    tau = model.sampling_inputs(2, 0.7, torch.Generator().manual_seed(2))["tau"]
    assert torch.equal(model.quantile(s, tau, y).round().clamp(0, 6).long(), s)
    # tau of a later pixel never reaches an earlier output; an earlier one reaches later ones (via the trunk)
    t = tau.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model.quantile(s, t, y)[:, 0, 1, 1].sum(), t)
    assert g[:, :, 1, 2:].abs().sum() == 0 and g[:, :, 2:].abs().sum() == 0 and g[:, 1:, 1, 1].abs().sum() == 0
    assert g[:, :, 0].abs().sum() > 0
    assert pixelzoo.create_model("gated_pixelcnn", (1, 3, 3), 5, **GATED).has_likelihood
    with pytest.raises(ConfigError, match="quantile head"):
        pixelzoo.create_model("gated_pixelcnn", (1, 3, 3), 5, **GATED).quantile(x[:, :1, :3, :3], tau[:, :1, :3, :3])


@pytest.mark.parametrize("trunk", sorted(TRUNK_OPTIONS))
def test_a_continuous_quantile_model_samples_its_q_at_the_drawn_tau(trunk):
    """A continuous level: the images are floats, and every sampled value is the model's Q at the drawn
    tau given the values before it (teacher forcing the sample reproduces it)."""
    torch.manual_seed(0)
    model = build_autoregressive(trunk, (3, 3, 4), 256, 2, head="quantile",
                                 head_options={"continuous": True, "n_cos": 4}, out_hidden=12,
                                 **TRUNK_OPTIONS[trunk]).eval()
    with torch.no_grad():
        model.output.out.weight.mul_(20.0)  # values spread over several units, far from integers
    y = torch.tensor([1, 0, 1])
    s = model.sample(3, y=y, temperature=0.8, generator=torch.Generator().manual_seed(4))
    assert s.dtype == torch.get_default_dtype() and s.shape == (3, 3, 3, 4)
    assert not torch.equal(s, s.round()) and s.std() > 0.1
    tau = model.sampling_inputs(3, 0.8, torch.Generator().manual_seed(4))["tau"]
    torch.testing.assert_close(model.quantile(s, tau, y), s, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(model.loss(s, y)["loss"])
    with pytest.raises(ConfigError, match="float"):
        model.quantile(s.long(), tau, y)
    # inpainting keeps the given float values
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[0] = True
    part = model.sample(3, y=y, known=s, mask=mask, generator=torch.Generator().manual_seed(5))
    assert torch.equal(part[:, :, 0], s[:, :, 0])
