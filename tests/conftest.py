from __future__ import annotations

import pytest

from tests.factories import make_member


@pytest.fixture
def member(db):
    """A returning member: PIN 480263, image and phrase chosen, both channels."""
    return make_member()
