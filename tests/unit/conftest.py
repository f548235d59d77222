import pytest

from storage_core.fakes import loopback_only


@pytest.fixture(autouse=True)
def _no_network():
    """Unit tests reach nothing but loopback: a stray default (the link-local
    metadata service, say) fails the test instead of leaving the machine."""
    with loopback_only():
        yield
