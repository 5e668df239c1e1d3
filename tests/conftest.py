import os

import pytest
import torch

# The suite runs on the CPU everywhere, GPU machines included (PIXELZOO_DEVICE=cuda runs it on a GPU);
# set here, at import, so the processes the tests start (the CLI, torchrun) inherit it.
# tests/test_cuda.py asks for its devices by name.
os.environ.setdefault("PIXELZOO_DEVICE", "cpu")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def single_thread():
    """Run the tests with one intra-op thread. Their tensors are tiny; on a busy 2-core machine two
    threads per op make such tests 10-100x slower (spinning), one thread does not."""
    before, env = torch.get_num_threads(), os.environ.get("PIXELZOO_THREADS")
    torch.set_num_threads(1)
    os.environ["PIXELZOO_THREADS"] = "1"  # the command line (main) sets its threads from it
    yield
    torch.set_num_threads(before)
    if env is None:
        os.environ.pop("PIXELZOO_THREADS", None)
    else:
        os.environ["PIXELZOO_THREADS"] = env


# The smallest configuration of every registered model, for the registry-wide tests. A model that
# is registered without an entry here makes those tests fail, so none escapes them. Keys
# "<model>+<variant>" are further pairings (a trunk with a head that is not its default, PixelIQN on
# another trunk); the tests build them as model "<model>" with the kwargs given.
TINY_MODELS = {
    "gated_pixelcnn": dict(channels=12, n_layers=4, kernel_size=3, first_kernel_size=7, out_hidden=12),
    "pixelcnnpp": dict(nr_resnet=1, nr_filters=8, dropout=0.0, head_options={"n_mix": 2}),
    "gated_pixelcnn+logistic_mixture": dict(channels=12, n_layers=4, kernel_size=3, first_kernel_size=7,
                                            out_hidden=12, head="logistic_mixture", head_options={"n_mix": 2}),
    "pixelcnnpp+categorical": dict(nr_resnet=1, nr_filters=8, dropout=0.0, head="categorical"),
    "pixelsnail": dict(channels=12, n_blocks=2, attention_every=1, heads=2, out_res_blocks=1, out_hidden=12),
    "pixeliqn": dict(channels=12, n_layers=4, kernel_size=3, first_kernel_size=7, out_hidden=12, n_cos=4),
    "pixeliqn+pixelsnail": dict(trunk="pixelsnail", channels=12, n_blocks=2, attention_every=1, heads=2,
                                out_res_blocks=1, out_hidden=12, n_cos=4),
    "pixeliqn+pixelcnnpp": dict(trunk="pixelcnnpp", nr_resnet=1, nr_filters=8, dropout=0.0, n_cos=4, out_hidden=12),
    "pixelsnail+quantile": dict(channels=12, n_blocks=2, attention_every=1, heads=2, out_res_blocks=1, out_hidden=12,
                                head="quantile", head_options={"n_cos": 4}),
    # MADE's hidden layers need at least C*H*W units: 192 covers test_cuda.py's (3, 8, 8) maps too
    "made": dict(hidden=192, n_layers=2, features=8, out_hidden=24),
    "made+quantile": dict(hidden=192, n_layers=2, features=8, out_hidden=24, head="quantile", head_options={"n_cos": 4}),
    "pixeliqn+made": dict(trunk="made", hidden=192, n_layers=2, features=8, out_hidden=24, n_cos=4),
}

# Registered composite models (chains of levels whose parts train stage by stage): the single-model
# checks above do not apply to them; tests/test_registry_composites.py runs the registry-wide checks
# over each (with its tiny configuration there), and each has its own test file for the rest. A
# registered model must be in TINY_MODELS or here.
COMPOSITE_MODELS = {
    "agave": "tests/test_agave.py",
    "defauw": "tests/test_defauw.py",
    "grayscale_pixelcnn": "tests/test_aux_pixelcnn.py",
    "pyramid_pixelcnn": "tests/test_aux_pixelcnn.py",
    "vqvae2": "tests/test_vqvae2.py",
}


def tiny_model_args(key: str) -> tuple[str, dict]:
    """(registered model name, hyper-parameters) of a ``TINY_MODELS`` key."""
    return key.split("+", 1)[0], TINY_MODELS[key]
