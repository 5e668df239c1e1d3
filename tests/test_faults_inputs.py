"""Fault matrix, inputs (issue 23, items 5 and 6): nothing silent, and the Python API checks its
arguments as the command line does. Each test's docstring is one row: the case, then the outcome;
what is on disk after is said where a case touches files (the others write nothing)."""

import copy
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import pixelzoo
from conftest import TINY_MODELS, tiny_model_args
from test_registry_composites import TINY_COMPOSITES, make
from pixelzoo import threads
from pixelzoo.commands.colorize_upscale import given_images
from pixelzoo.errors import CheckpointError, ConfigError
from pixelzoo.training import RunConfig, apply_overrides
from pixelzoo.training.config import set_steps
from pixelzoo.training.run import resolve_model_config

SHAPE = (1, 4, 4)


def tiny(key, num_classes=None, shape=SHAPE, levels=5):
    name, hp = tiny_model_args(key)
    return pixelzoo.create_model(name, shape, levels, num_classes, **copy.deepcopy(hp))


def fake_splits(shape=(1, 8, 8), levels=17, classes=10):
    return SimpleNamespace(image_shape=shape, num_levels=levels, num_classes=classes,
                           train=SimpleNamespace(name="digits/train"))


# ---------------------------------------------------------------------- --steps and train_parts
def test_steps_reaches_every_part_of_a_composite_preset():
    """`train defauw/fashion-ff-cpu --steps 3` -> every part trains 3 steps (its train_parts steps replaced)."""
    preset = pixelzoo.load_preset("defauw/fashion-ff-cpu")
    assert any("steps" in o for o in preset["train_parts"].values())
    run = RunConfig.from_dict(set_steps(preset, 3))
    assert set(run.part_steps(preset["train_parts"]).values()) == {3}
    assert run.train.steps == 3


def test_resume_steps_reach_every_part():
    """`train --resume RUN --steps 5` on a composite -> every part's target is 5, config.json says so."""
    run = RunConfig.from_dict(pixelzoo.load_preset("defauw/fashion-ff-cpu")).with_steps(5)
    assert set(run.part_steps(run.parts).values()) == {5}
    assert all(o.get("steps", 5) == 5 for o in run.to_dict()["train_parts"].values())


def test_set_reaches_train_parts():
    """`--set train_parts.PART.steps=7` -> that part trains 7 steps, the others keep theirs."""
    preset = pixelzoo.load_preset("defauw/fashion-ff-cpu")
    run = RunConfig.from_dict(apply_overrides(set_steps(preset, 3), ["train_parts.prior.steps=7",
                                                                    "train_parts.level1.lr=0.0003"]))
    assert run.train_for("prior").steps == 7 and run.train_for("level1").steps == 3
    assert run.train_for("level1").lr == 0.0003


@pytest.mark.parametrize("item", ["train_parts.steps=3", "train_parts.prior.x.steps=3", "parts.prior.steps=3",
                                  "train_parts..steps=3"])
def test_set_train_parts_malformed_is_an_error(item):
    """`--set` with a malformed train_parts key -> ConfigError naming the expected forms."""
    with pytest.raises(ConfigError, match="train_parts.PART.KEY=VALUE"):
        apply_overrides({"model": {}, "data": {}}, [item])


# ---------------------------------------------------------------------- model keys against the data
@pytest.mark.parametrize("key,value,shown", [("num_levels", 256, "17"), ("image_shape", [3, 8, 8], "[1, 8, 8]"),
                                             ("num_classes", 5, "10 classes")])
def test_model_keys_that_disagree_with_the_data_are_errors(key, value, shown):
    """`--set model.num_levels/image_shape/num_classes` unlike the data's -> ConfigError naming both values."""
    with pytest.raises(ConfigError, match=f"model.{key}") as e:
        resolve_model_config({"name": "gated_pixelcnn", key: value}, fake_splits())
    assert str(value) in str(e.value) and shown in str(e.value)


def test_model_keys_that_agree_with_the_data_are_kept():
    """model keys equal to the data's (a run's own config.json) -> accepted, unchanged."""
    cfg = resolve_model_config({"name": "g", "image_shape": [1, 8, 8], "num_levels": 17, "num_classes": 10},
                               fake_splits())
    assert cfg == {"name": "g", "image_shape": [1, 8, 8], "num_levels": 17, "num_classes": 10}


def test_class_conditional_preset_on_unlabelled_data_is_an_error():
    """a class-conditional preset on data without labels -> ConfigError saying how to set num_classes null."""
    with pytest.raises(ConfigError, match=r"no labels.*--set model.num_classes=null"):
        resolve_model_config({"name": "gated_pixelcnn"}, fake_splits(classes=None))


def test_unconditional_when_asked():
    """model.num_classes null, or class_conditional false, on any data -> an unconditional model."""
    for cfg, classes in (({"num_classes": None}, None), ({"num_classes": None}, 10), ({"class_conditional": False}, 10)):
        assert resolve_model_config({"name": "g", **cfg}, fake_splits(classes=classes))["num_classes"] is None


def test_every_preset_on_its_own_data_asks_for_what_its_data_has():
    """every preset on unlabelled data (patches) says class_conditional false -> it trains there without error."""
    for name in pixelzoo.list_presets():
        config = pixelzoo.load_preset(name)
        if config["data"]["name"] == "patches" and config["data"].get("split") != "crops":
            assert config["model"].get("class_conditional") is False, name


# ---------------------------------------------------------------------- labels on conditional models
@pytest.mark.parametrize("key", sorted(TINY_MODELS))
def test_y_none_on_a_conditional_model_is_an_error(key):
    """y=None in loss / log_prob / sample of a class-conditional model -> ConfigError asking for labels."""
    model = tiny(key, num_classes=3)
    x = torch.randint(0, 5, (2, *SHAPE))
    with pytest.raises(ConfigError, match="class-conditional"):
        model.loss(x)
    if model.has_likelihood:
        with pytest.raises(ConfigError, match="class-conditional"):
            model.log_prob(x)
    with pytest.raises(ConfigError, match="class-conditional"):
        model.sample(2)
    assert torch.isfinite(model.loss(x, torch.tensor([0, 2]))["loss"])


@pytest.mark.parametrize("name", sorted(TINY_COMPOSITES))
def test_y_none_on_a_conditional_composite_is_an_error(name):
    """y=None in sample / log_prob of a class-conditional composite -> ConfigError asking for labels."""
    model = make(name)
    with pytest.raises(ConfigError, match="class-conditional"):
        model.sample(2)
    if model.has_likelihood:
        x = torch.randint(0, model.num_levels, (2, *model.image_shape))
        with pytest.raises(ConfigError, match="class-conditional"):
            model.log_prob(x)


# ---------------------------------------------------------------------- load_pretrained
def _saved(tmp_path):
    model = tiny("gated_pixelcnn")
    model.save_pretrained(tmp_path)
    return tmp_path / "model.safetensors"


def test_load_pretrained_int64_truncated_weights_are_an_error(tmp_path):
    """load_pretrained of weights written as int64 (truncated) -> CheckpointError naming the tensor; files unchanged."""
    path = _saved(tmp_path)
    state = {k: v.long() if v.is_floating_point() else v for k, v in load_file(path).items()}
    save_file(state, path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"tensor '.*' is torch.int64, the model's is torch.float32"):
        pixelzoo.load_pretrained(tmp_path)
    assert path.read_bytes() == before


def test_load_pretrained_nan_weights_are_an_error(tmp_path):
    """load_pretrained of weights holding a NaN -> CheckpointError naming the tensor; files unchanged."""
    path = _saved(tmp_path)
    state = load_file(path)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] = float("nan")
    save_file(state, path)
    with pytest.raises(CheckpointError, match=f"tensor '{name}' holds 1 NaN or infinite"):
        pixelzoo.load_pretrained(tmp_path)


def test_load_pretrained_good_weights_load(tmp_path):
    """load_pretrained of a model's own save -> the same weights (the checks reject nothing good)."""
    _saved(tmp_path)
    assert isinstance(pixelzoo.load_pretrained(tmp_path), pixelzoo.models.AutoregressiveModel)


# ---------------------------------------------------------------------- head options, masks, counts
@pytest.mark.parametrize("key", sorted(k for k in TINY_MODELS if not k.startswith("pixeliqn")))
def test_head_options_a_head_does_not_take_are_an_error(key):
    """head_options={'mode': 'map'} when building a model -> ConfigError naming the head's options."""
    name, hp = tiny_model_args(key)
    hp = {**copy.deepcopy(hp), "head_options": {**hp.get("head_options", {}), "mode": "map"}}
    with pytest.raises(ConfigError, match=r"takes no option\(s\) \['mode'\].*model.sample"):
        pixelzoo.create_model(name, SHAPE, 5, None, **hp)


@pytest.mark.parametrize("mask", [torch.full((4, 4), 0.5), torch.ones(4, 4, dtype=torch.long)])
def test_a_mask_that_is_not_boolean_is_an_error(mask):
    """sample(known=, mask=) with a float mask of 0.5 or an integer mask -> ConfigError: masks are boolean."""
    model = tiny("gated_pixelcnn")
    with pytest.raises(ConfigError, match="boolean"):
        model.sample(1, known=torch.zeros(1, *SHAPE, dtype=torch.long), mask=mask)


def test_colorize_more_test_images_than_there_are_is_an_error():
    """`colorize RUN test -n 1000` on a smaller test set -> ConfigError naming both numbers; nothing written."""
    test_size = len(pixelzoo.data.load_dataset("digits").test)
    with pytest.raises(ConfigError, match=f"-n 1000 .* {test_size} test images"):
        given_images("test", {"data": {"name": "digits"}}, 1000, 0)
    assert len(given_images("test", {"data": {"name": "digits"}}, test_size, 0)[0]) == test_size


def test_colorize_more_images_than_an_npz_holds_is_an_error(tmp_path):
    """`colorize RUN s.npz -n 5` (or a typed -n 8) on an .npz of 2 images -> ConfigError naming both;
    -n not given (the default, 8 or fewer) takes the 2; on 12 images it takes 8."""
    np.savez(tmp_path / "s.npz", images=np.zeros((2, 1, 8, 8), np.uint8))
    for n in (5, 8):
        with pytest.raises(ConfigError, match=f"-n {n} .* the 2 it holds"):
            given_images(str(tmp_path / "s.npz"), {}, n, 0)
    assert len(given_images(str(tmp_path / "s.npz"), {}, None, 0)[0]) == 2
    np.savez(tmp_path / "t.npz", images=np.zeros((12, 1, 8, 8), np.uint8))
    assert len(given_images(str(tmp_path / "t.npz"), {}, None, 0)[0]) == 8
    assert len(given_images("test", {"data": {"name": "digits"}}, None, 0)[0]) == 8


# ---------------------------------------------------------------------- the Python API's arguments
BAD_MODEL_ARGS = [((1, 4, 4), 0, None), ((1, 4, 4), 1, None), ((1, 4, 4), -2, None), ((1, 4, 4), 5, -1),
                  ((1, 4, 4), 5, 0), ((1, 0, 4), 5, None), ((1, -4, 4), 5, None), ((1, 4), 5, None),
                  ((1, 4, 4, 4), 5, None), (4, 5, None)]


@pytest.mark.parametrize("name", pixelzoo.list_models())
@pytest.mark.parametrize("args", BAD_MODEL_ARGS, ids=str)
def test_create_model_bad_sizes_are_config_errors(name, args):
    """create_model with num_levels 0/1/negative, num_classes <= 0, a non-positive or non-3 image shape
    -> ConfigError (never RuntimeError, ZeroDivisionError, IndexError)."""
    hp = copy.deepcopy(TINY_COMPOSITES[name][2] if name in TINY_COMPOSITES else TINY_MODELS[name])
    with pytest.raises(ConfigError):
        pixelzoo.create_model(name, *args, **hp)


def _samplers():
    return [(k, lambda k=k: tiny(k)) for k in sorted(TINY_MODELS)] + \
           [(n, lambda n=n: make(n)) for n in sorted(TINY_COMPOSITES)]


@pytest.mark.parametrize("build", [b for _, b in _samplers()], ids=[k for k, _ in _samplers()])
@pytest.mark.parametrize("kwargs", [dict(n=2, temperature=-1.0), dict(n=2, temperature=math.nan),
                                    dict(n=2, temperature=math.inf), dict(n=0), dict(n=-3), dict(n=1.5)], ids=str)
def test_sample_bad_arguments_are_config_errors(build, kwargs):
    """sample with temperature -1, NaN or inf, or n 0, negative or fractional -> ConfigError."""
    model, kwargs = build(), dict(kwargs)
    y = None if model.num_classes is None else 0
    with pytest.raises(ConfigError):
        model.sample(kwargs.pop("n"), y=y, **kwargs)


# ---------------------------------------------------------------------- threads from Python
@pytest.fixture
def fresh_policy(monkeypatch):
    """The thread policy as in a new process where nobody set threads; threads restored after."""
    before = torch.get_num_threads()
    for name in (threads.ENV, *threads.TORCH_ENVS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "_APPLIED", False)
    monkeypatch.setattr(threads, "_SET", False)
    monkeypatch.setattr(threads, "_TORCH_AT_IMPORT", before)
    monkeypatch.setattr(threads, "default_threads", lambda: before + 1)
    yield before
    torch.set_num_threads(before)


def test_python_sampling_applies_the_command_lines_thread_policy(fresh_policy):
    """the first sample() from Python, threads never set -> the load-aware default, once."""
    tiny("gated_pixelcnn").sample(1)
    assert torch.get_num_threads() == fresh_policy + 1
    torch.set_num_threads(fresh_policy)
    tiny("gated_pixelcnn").sample(1)  # once only
    assert torch.get_num_threads() == fresh_policy


def test_python_training_applies_the_thread_policy(fresh_policy):
    """start_run/resume_run parse a RunConfig first -> the policy applies there too."""
    RunConfig.from_dict({"model": {}, "data": {}})
    assert torch.get_num_threads() == fresh_policy + 1


def test_threads_the_user_set_are_kept(fresh_policy, monkeypatch):
    """torch.set_num_threads, pixelzoo.threads.set_threads or $PIXELZOO_THREADS by the user -> theirs is kept."""
    monkeypatch.setattr(threads, "_TORCH_AT_IMPORT", fresh_policy + 5)  # torch.set_num_threads was called since
    assert threads.user_choice() == "torch.set_num_threads"
    tiny("gated_pixelcnn").sample(1)
    assert torch.get_num_threads() == fresh_policy
    monkeypatch.setattr(threads, "_APPLIED", False)
    monkeypatch.setenv(threads.ENV, "1")
    assert threads.user_choice() == "$PIXELZOO_THREADS" and threads.apply_policy() == 1
    monkeypatch.setattr(threads, "_APPLIED", False)
    threads.set_threads(fresh_policy)
    assert threads.user_choice() == "pixelzoo.threads.set_threads" and threads.apply_policy() is None


# ---------------------------------------------------------------------- README
def test_readme_says_which_presets_use_precision_auto():
    """README on `train.precision: auto` -> true of every CPU preset (the digits, AGAVE, De Fauw, VQ-VAE-2 ones fp32)."""
    fp32_families = ("agave", "defauw", "vqvae2")
    for name in pixelzoo.list_presets():
        if name.endswith("-paper"):
            continue
        precision = pixelzoo.load_preset(name)["train"].get("precision", "fp32")
        fp32 = name.split("/")[0] in fp32_families or name.endswith("/digits")
        assert precision == ("fp32" if fp32 else "auto"), name
