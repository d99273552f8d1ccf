import pytest

from tests.fakes import fake_all_in_one, serving


@pytest.fixture
async def running(tmp_path):
    """The all-in-one app with the fake models: a client of its gateway, and its gallery."""
    app = fake_all_in_one(tmp_path / "data")
    async with serving(app) as client:
        yield client, app.state.parts.gallery
