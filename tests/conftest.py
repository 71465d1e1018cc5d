"""Strict JAX settings for the whole suite (configuration read once, here at the edge)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci")


def _data_root():
    root = os.environ.get("LPGNAS_DATA")
    if root:
        return root
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.abspath(os.path.join(here, "..", "..", "shared", "datasets"))


@pytest.fixture(scope="session")
def data_root():
    """The benchmark data root (``LPGNAS_DATA``, else ``../shared/datasets``); skips when absent."""
    root = _data_root()
    if not os.path.isdir(root):
        pytest.skip(f"benchmark data root {root} not present")
    return root
