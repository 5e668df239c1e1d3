"""The stepper seam: the sampler takes every sub-pixel's parameters from the stepper the model gives
it, whatever the trunk; a trunk may supply its own (incremental) stepper."""

import pytest
import torch

import pixelzoo
from pixelzoo.errors import ConfigError
from pixelzoo.heads import create_head
from pixelzoo.models.autoregressive.model import AutoregressiveModel
from pixelzoo.models.autoregressive.gated_pixelcnn.trunk import GatedPixelCNNTrunk
from pixelzoo.models.autoregressive.gated_pixelcnn.stepper import GatedStepper
from pixelzoo.models.autoregressive.pixelcnnpp.stepper import PixelCNNPPStepper
from pixelzoo.models.autoregressive.pixelsnail.stepper import SnailStepper
from pixelzoo.models.autoregressive.steppers import FullForwardStepper, Stepper
from pixelzoo.sampling import ancestral_sample

GATED = dict(channels=12, n_layers=3, kernel_size=3, first_kernel_size=5, out_hidden=12)


class RecordingStepper(FullForwardStepper):
    """The default stepper, recording every call."""

    def __init__(self, *args, calls=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = calls

    def params(self, x, i, j, c):
        self.calls.append((i, j, c))
        return super().params(x, i, j, c)


class RecordingTrunk(GatedPixelCNNTrunk):
    """A Gated PixelCNN trunk whose incremental stepper is the recording one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []
        self.created = []

    def incremental_stepper(self, model, n, y=None, spatial=None, inputs=None):
        self.created.append((n, None if y is None else y.tolist(), sorted(inputs)))
        return RecordingStepper(model, n, y, spatial, inputs, calls=self.calls)


def recording_model(shape=(3, 3, 4), levels=6, classes=2):
    torch.manual_seed(0)
    trunk = RecordingTrunk(shape[0], channels=12, n_layers=3, first_kernel_size=5, num_classes=classes)
    return AutoregressiveModel(trunk, create_head("categorical", levels, shape[0]), shape, levels, classes,
                               out_hidden=12).eval()


def test_a_trunk_supplying_its_own_stepper_is_sampled_through_it():
    model = recording_model()
    known = torch.randint(0, 6, (1, 3, 3, 4), generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(3, 3, 4, dtype=torch.bool)
    mask[:, 0] = True        # the first row is given: never asked for
    mask[1, 1, 2] = True     # one sub-pixel of a pixel
    mask[:, 2, 3] = True     # a whole pixel
    out = model.sample(2, y=torch.tensor([0, 1]), known=known, mask=mask, generator=torch.Generator().manual_seed(2))
    expected = [(i, j, c) for i in range(3) for j in range(4) for c in range(3) if not mask[c, i, j]]
    assert model.trunk.calls == expected  # raster order, given sub-pixels skipped
    assert model.trunk.created == [(2, [0, 1], [])]  # one stepper per sample call
    # the same draws as the default full-forward stepper
    naive = model.sample(2, y=torch.tensor([0, 1]), known=known, mask=mask, generator=torch.Generator().manual_seed(2),
                         cached=False)
    assert torch.equal(out, naive)
    assert len(model.trunk.calls) == len(expected)  # cached=False did not use the trunk's stepper
    model.sample(1, y=0, cached=True)
    assert len(model.trunk.created) == 2


class ConstantStepper(Stepper):
    """Parameters that pin sub-pixel (c, i, j) to level (c + i + 2 j) % K, whatever was drawn."""

    def params(self, x, i, j, c):
        k = self.model.num_levels
        logits = torch.full((x.shape[0], k), -1e4)
        logits[:, (c + i + 2 * j) % k] = 0.0
        return logits


class ConstantModel(AutoregressiveModel):
    def stepper(self, n, y=None, spatial=None, inputs=None, cached=None):
        return ConstantStepper(self, n, y, spatial, inputs)


def test_a_model_supplying_its_own_stepper_is_sampled_through_it():
    torch.manual_seed(0)
    trunk = GatedPixelCNNTrunk(2, channels=6, n_layers=2)
    model = ConstantModel(trunk, create_head("categorical", 5, 2), (2, 3, 3), 5)
    out = model.sample(3)
    c, i, j = torch.meshgrid(torch.arange(2), torch.arange(3), torch.arange(3), indexing="ij")
    assert torch.equal(out, ((c + i + 2 * j) % 5).expand(3, -1, -1, -1))


def test_the_model_picks_the_stepper():
    torch.manual_seed(0)
    gated = pixelzoo.create_model("gated_pixelcnn", (1, 3, 3), 5, **GATED)
    assert type(gated.stepper(2)) is GatedStepper
    assert type(gated.stepper(2, cached=True)) is GatedStepper
    assert type(gated.stepper(2, cached=False)) is FullForwardStepper
    snail = pixelzoo.create_model("pixelsnail", (1, 3, 3), 5, channels=8, n_blocks=1, out_res_blocks=1)
    assert type(snail.stepper(2)) is SnailStepper
    assert type(snail.stepper(2, cached=False)) is FullForwardStepper
    pp = pixelzoo.create_model("pixelcnnpp", (1, 3, 3), 5, nr_resnet=1, nr_filters=8, dropout=0.0)
    assert type(pp.stepper(2)) is PixelCNNPPStepper
    assert type(pp.stepper(2, cached=False)) is FullForwardStepper
    plain = pixelzoo.create_model("pixelcnnpp", (1, 3, 3), 5, nr_resnet=1, nr_filters=8, dropout=0.0)
    plain.trunk.incremental_stepper = lambda *args, **kwargs: None  # a trunk without an incremental stepper
    assert type(plain.stepper(2)) is FullForwardStepper
    with pytest.raises(ConfigError, match="incremental stepper"):
        plain.stepper(2, cached=True)
    with pytest.raises(ConfigError, match="incremental stepper"):
        ancestral_sample(plain, 2, cached=True)


@pytest.mark.parametrize("trunk, options", [
    ("gated_pixelcnn", dict(channels=12, n_layers=3, first_kernel_size=5)),
    ("pixelcnnpp", dict(nr_resnet=1, nr_filters=8, dropout=0.0)),
])
def test_full_forward_stepper_gives_the_full_forward_parameters(trunk, options):
    """Per sub-pixel (channel-masked trunks) or per pixel with the output layer and the head per
    channel (PixelCNN++), the default stepper's parameters are those of one full forward pass."""
    torch.manual_seed(0)
    for head, head_options in [("categorical", {}), ("quantile", {"n_cos": 3})]:
        model = pixelzoo.create_model(trunk, (3, 3, 4), 6, 2, head=head, head_options=head_options, out_hidden=12,
                                      **options).eval()
        x = torch.randint(0, 6, (2, 3, 3, 4))
        y = torch.tensor([1, 0])
        inputs = model.sampling_inputs(2, 1.0, torch.Generator().manual_seed(0))
        full = model.conditional_params(x, y, **inputs)
        stepper = model.stepper(2, y=y, inputs=inputs, cached=False)
        with torch.no_grad():
            for i in range(3):
                for j in range(4):
                    for c in range(3):
                        torch.testing.assert_close(stepper.params(x, i, j, c), full[:, c, :, i, j], atol=1e-5, rtol=1e-5)
