from __future__ import annotations

import pytest

from dogsearch.models import registry as R


@pytest.fixture
def register_model():
    """``@register_model(name)`` as the model families use it, the names removed from the registry afterwards."""
    added: list[str] = []

    def register(name: str, **options):
        def decorator(builder):
            R.register_model(name, **options)(builder)
            added.append(name)
            return builder

        return decorator

    yield register
    for name in added:
        R.MODELS.remove(name)
