"""The HRNet-W32 AP-10K model through MMPose, served by the same app and API as the default model.

MMPose is an optional extra (`make setup MMPOSE=1`: mmcv is built from source, about 13 minutes), so these tests
run only where it is installed. No AP-10K checkpoint can be downloaded here: the checkpoint is the HRNet-W32 AP-10K
network with random weights, saved as OpenMMLab's checkpoints are ({"state_dict": ...}); what is tested is the
loading, the inference path and the response, not the keypoints' accuracy."""
from __future__ import annotations

import httpx
import pytest
import torch

from dogsearch.models.pose import keypoints as K
from dogsearch.models.pose.hrnet import mmpose_config_path
from dogsearch.services.pose.app import create_app
from dogsearch.services.pose.settings import PoseSettings
from tests.pose.test_app import _photo

mmpose_apis = pytest.importorskip("mmpose.apis", reason="MMPose is optional: `make setup MMPOSE=1` installs it")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = mmpose_apis.init_model(str(mmpose_config_path()), checkpoint=None, device="cpu")
    path = tmp_path_factory.mktemp("hrnet") / "hrnet_w32_ap10k_random.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    return path


async def _post(settings: PoseSettings) -> httpx.Response:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pose",
                                     timeout=120) as client:
            return await client.post("/v1/pose", files={"image": ("dog.jpg", _photo(), "image/jpeg")})


async def test_hrnet_checkpoint_serves_ap10k_keypoints(checkpoint):
    response = await _post(PoseSettings(model="hrnet-w32-ap10k", checkpoint=str(checkpoint), detector="whole-image"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"].startswith("mmpose-hrnet-w32-ap10k@")
    [dog] = body["dogs"]
    assert [kp["name"] for kp in dog["keypoints"]] == list(K.AP10K_NAMES)
    # Near the crop MMPose took around the box it was given (the whole 200 x 120 photo, made square and padded
    # by 1.25: 250 px about its centre; random weights may put a peak at its edge), scores in [0, 1].
    for kp in dog["keypoints"]:
        assert abs(kp["x"] - 100) <= 150 and abs(kp["y"] - 60) <= 150 and 0 <= kp["score"] <= 1
    assert dog["analysis"]["posture"]["label"] in ("standing", "sitting", "lying", "unknown")


async def test_a_checkpoint_of_another_network_is_a_clear_503(checkpoint, tmp_path):
    # MMPose's own loader only logs missing weights: the service must refuse, not serve random keypoints.
    other = tmp_path / "not-hrnet.pth"
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(64, 3, 3, 3)}}, other)
    response = await _post(PoseSettings(model="hrnet-w32-ap10k", checkpoint=str(other), detector="whole-image"))
    assert response.status_code == 503
    assert "is not an HRNet-W32 AP-10K checkpoint" in response.json()["detail"]

    reshaped = tmp_path / "wrong-shape.pth"
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    state["head.final_layer.weight"] = state["head.final_layer.weight"][:5]  # 5 keypoints, not 17
    torch.save({"state_dict": state}, reshaped)
    response = await _post(PoseSettings(model="hrnet-w32-ap10k", checkpoint=str(reshaped), detector="whole-image"))
    assert response.status_code == 503
    assert "does not fit" in response.json()["detail"]
