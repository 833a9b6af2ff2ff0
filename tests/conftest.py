import logging
import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def _ray_session():
    import ray

    yield ray
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def ray_cluster(_ray_session):
    """A real embedded Ray, started once and shared by the tests that need it (ray.init costs ~5 s
    here); restarted if a test shut it down."""
    ray = _ray_session
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    return ray
