import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _util import VECTORS  # noqa: E402

@pytest.fixture
def vectors():
    return VECTORS
