import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# The smallest configuration of every registered model, for the registry-wide tests. A model that
# is registered without an entry here makes those tests fail, so none escapes them.
TINY_MODELS = {
    "gated_pixelcnn": dict(channels=12, n_layers=4, kernel_size=3, first_kernel_size=7, out_hidden=12),
}
