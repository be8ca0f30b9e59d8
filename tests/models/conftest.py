"""One torch thread for these tiny-model tests: on a busy 2-core machine two intra-op threads
make them several times slower (they contend with other processes), and tiny models gain
nothing from a second thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
