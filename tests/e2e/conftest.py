"""What every end-to-end scenario shares."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def clean_slate(request):
    """A scenario on a module's shared local stack starts, and leaves it, with
    no faults, hooks or injected errors and with empty logs (Stack.reset)."""
    if "stack" not in request.fixturenames:
        yield
        return
    stack = request.getfixturevalue("stack")
    stack.reset()
    yield
    stack.reset()
