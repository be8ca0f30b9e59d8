"""Tiny models throughout: one torch thread (see ``one_torch_thread`` in tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def _tiny_models(one_torch_thread: None) -> None:
    pass
