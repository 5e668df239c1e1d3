"""The model base: declared capabilities, the typed result of sampling several levels, and the small
helpers every model shares (labels, option defaults, evaluation mode)."""

import pytest
import torch
import torch.nn as nn

import pixelzoo
from pixelzoo.errors import ConfigError
from pixelzoo.models.base import (Encodes, ImportanceWeighted, Part, PixelzooModel, Reconstructs, SamplesImages,
                                  SamplesLevels, SamplesReconstructions, has_likelihood, merge_options, takes_labels)
from pixelzoo.models.chain import SampledLevels
from pixelzoo.nn.modes import eval_mode
from pixelzoo.sampling.labels import expand_labels, per_image

from conftest import TINY_MODELS
from test_registry_composites import make as make_composite

#: what each registered model declares it can do, beyond sampling images (which every model does)
DECLARED = {
    "agave": {SamplesLevels, SamplesReconstructions, ImportanceWeighted},
    "defauw": {SamplesLevels, SamplesReconstructions, Encodes},
    "vqvae2": {SamplesLevels, Encodes, Reconstructs},
    "grayscale_pixelcnn": {SamplesLevels},
    "pyramid_pixelcnn": {SamplesLevels},
}
CAPABILITIES = [SamplesLevels, Encodes, Reconstructs, SamplesReconstructions, ImportanceWeighted]


def _tiny(name):
    if name in TINY_MODELS:
        return pixelzoo.create_model(name, (1, 8, 8), 5, 3, **TINY_MODELS[name])
    return make_composite(name)


@pytest.mark.parametrize("name", pixelzoo.list_models())
def test_every_model_declares_its_capabilities(name):
    model = _tiny(name)
    assert isinstance(model, PixelzooModel) and isinstance(model, Part) and isinstance(model, SamplesImages)
    assert {c for c in CAPABILITIES if isinstance(model, c)} == DECLARED.get(name, set())
    # what a model declares, it has (an abstract method left unimplemented could not be built)
    for capability in CAPABILITIES:
        if isinstance(model, capability):
            for method in capability.__abstractmethods__:
                assert callable(getattr(model, method))


def test_the_declaration_helpers_read_declarations_only():
    plain = nn.ModuleDict({"a": nn.Linear(1, 1)})
    plain.num_classes, plain.has_likelihood = 3, True   # attributes alone declare nothing
    assert not takes_labels(plain) and not has_likelihood(plain)
    model = pixelzoo.create_model("gated_pixelcnn", (1, 8, 8), 5, 3, **TINY_MODELS["gated_pixelcnn"])
    assert takes_labels(model) and has_likelihood(model)
    iqn = pixelzoo.create_model("pixeliqn", (1, 8, 8), 5, None, **TINY_MODELS["pixeliqn"])
    assert not takes_labels(iqn) and not has_likelihood(iqn)


def test_sampled_levels_is_a_read_only_mapping_in_chain_order():
    a, b, c = torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 4, 4), torch.full((2, 1, 2, 2), 2.0)
    lv = SampledLevels({"image": a, "4x4": b, "2x2": c}, "image")
    assert list(lv) == ["image", "4x4", "2x2"] and len(lv) == 3 and "4x4" in lv and "8x8" not in lv
    assert lv.images is a and lv["2x2"] is c
    assert [t.shape[-1] for t in lv.top_down()] == [2, 4, 8]
    with pytest.raises(ConfigError, match="data level 'image' was not sampled"):
        SampledLevels({"2x2": c}, "image").images


def test_a_chain_samples_levels_as_one_result():
    model = _tiny("pyramid_pixelcnn")
    g = torch.Generator().manual_seed(0)
    lv = model.sample_levels(3, y=1, generator=g)
    assert isinstance(lv, SampledLevels) and list(lv) == model.level_order
    again = model.sample(3, y=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(lv.images, again)
    low = lv.top_down()[0]
    up = model.sample_levels(3, y=1, given={model.level_order[-1]: low}, generator=torch.Generator().manual_seed(1))
    assert torch.equal(up[model.level_order[-1]], low) and up.images.shape == lv.images.shape
    assert model.sampled_parts({model.level_order[-1]}) == model.part_names[1:]
    assert model.level_of_shape(low.shape[1:]) == model.level_order[-1]
    with pytest.raises(ConfigError, match="no level"):
        model.level_of_shape((3, 5, 5))


def test_expand_labels():
    assert expand_labels(None, 3, 2) is None
    assert expand_labels(4, 3).tolist() == [4, 4, 4]
    assert expand_labels(torch.tensor(1), 2, 2).tolist() == [1, 1, 1, 1]
    assert expand_labels(torch.tensor([0, 2]), 2, 3).tolist() == [0, 0, 0, 2, 2, 2]
    assert expand_labels([5, 6], 2).tolist() == [5, 6]
    with pytest.raises(ConfigError, match=r"\(3,\) tensor"):
        expand_labels(torch.tensor([0, 1]), 3)
    assert per_image(2) == 2
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="n_per_image"):
            per_image(bad)


def test_merge_options():
    defaults = {"a": 1, "b": {"c": [1]}}
    merged = merge_options({"a": 2}, defaults, "thing")
    assert merged == {"a": 2, "b": {"c": [1]}}
    merged["b"]["c"].append(2)
    assert defaults["b"]["c"] == [1]                    # deep copies: the defaults never change
    assert merge_options(None, defaults, "thing") == defaults
    with pytest.raises(ConfigError, match=r"unknown thing option\(s\) \['z'\]"):
        merge_options({"z": 1}, defaults, "thing")
    with pytest.raises(ConfigError, match="thing must be a dict"):
        merge_options([1], defaults, "thing")


def test_eval_mode_restores_each_module_even_on_error():
    a, b = nn.Dropout(0.5), nn.Dropout(0.5).eval()
    with eval_mode(a, b, len):   # a function among them is left alone
        assert not a.training and not b.training
    assert a.training and not b.training
    with pytest.raises(RuntimeError):
        with eval_mode(a):
            assert not a.training
            raise RuntimeError("inside")
    assert a.training


def test_eval_mode_sets_every_submodule_and_skips_modules_already_in_eval(monkeypatch):
    # a module in eval mode with a submodule in training mode: within the block all in eval mode
    outer = nn.Sequential(nn.Dropout(0.5), nn.Sequential(nn.Dropout(0.5))).eval()
    outer[1][0].train()
    with eval_mode(outer):
        assert not any(m.training for m in outer.modules())
    # a module whose every submodule is in eval mode: not walked by eval()/train() at all
    quiet = nn.Sequential(nn.Dropout(0.5), nn.Linear(2, 2)).eval()
    calls = []
    monkeypatch.setattr(nn.Module, "train", lambda self, mode=True: calls.append(mode) or self)
    with eval_mode(quiet):
        assert not any(m.training for m in quiet.modules())
    assert calls == []
