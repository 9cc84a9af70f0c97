import pytest

from tfseg.data import write_synthetic_pets


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A synthetic dataset in the official layout, shared by the data tests."""
    root = tmp_path_factory.mktemp("synthetic_pets")
    write_synthetic_pets(root, num_images=24, seed=3)
    return root
