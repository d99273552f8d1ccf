"""Domain errors cross a process unchanged: a service answers each kind with its status and code, and the client
raises the same class again."""
from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from dogsearch.core.errors import Conflict, InvalidInput, NotFound, StorageFull, TimedOut, TooLarge, Unavailable
from dogsearch.core.images import ImageRejected, ImageTooLarge
from dogsearch.gallery.errors import ModelMismatch
from dogsearch.inference.batching import QueueFull
from dogsearch.search.contract import CollectionMismatch, CollectionMissing, StoreError
from dogsearch.services.errors import UpstreamFailure, install_error_mapping, status_of
from dogsearch.services.http import ServiceClient
from tests.fakes import fake_all_in_one, serving
from tests.images import solid


def app_raising(exc: Exception) -> FastAPI:
    app = FastAPI()
    install_error_mapping(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return app


@pytest.mark.parametrize(("exc", "status"), [
    (ImageTooLarge("12000x12000"), 413), (InvalidInput("bad"), 422), (NotFound("none"), 404),
    (CollectionMissing("no collection"), 409), (QueueFull("full"), 503), (TimedOut("slow"), 504),
    (StorageFull("disk full"), 507),
])
def test_each_kind_has_one_status(exc, status):
    assert status_of(exc) == status


@pytest.mark.parametrize("exc", [CollectionMissing("no collection yet"), CollectionMismatch("dim 48 != 384"),
                                 ModelMismatch("other model"), ImageTooLarge("too many pixels"), NotFound("no dog"),
                                 StorageFull("disk full")])
async def test_the_client_raises_the_class_the_service_raised(exc):
    client = ServiceClient("http://svc", app=app_raising(exc))
    client.service = "search"
    with pytest.raises(type(exc)) as caught:
        await client.request("GET", "/boom")
    said = exc.reason if isinstance(exc, ImageRejected) else f"search: {exc.reason}"  # the caller's photo: as is
    assert type(caught.value) is type(exc) and caught.value.reason == said
    assert caught.value.source == "search"
    await client.aclose()


async def test_a_code_of_another_kind_is_not_trusted():
    # A 404 that names a Conflict's code is a NotFound all the same: the status decides the kind.
    app = FastAPI()

    @app.get("/boom")
    async def boom():
        from fastapi.responses import JSONResponse
        return JSONResponse({"detail": "odd", "code": CollectionMissing.code}, status_code=404)

    client = ServiceClient("http://svc", app=app)
    with pytest.raises(NotFound) as caught:
        await client.request("GET", "/boom")
    assert not isinstance(caught.value, Conflict)
    await client.aclose()


async def test_server_errors_and_unreachable_services_are_upstream_failures():
    client = ServiceClient("http://svc", app=app_raising(StoreError("disk gone")))  # a 500
    client.service = "embedder"
    with pytest.raises(UpstreamFailure, match="embedder unavailable"):
        await client.request("GET", "/boom")
    await client.aclose()
    dead = ServiceClient("http://127.0.0.1:9", timeout=2)
    dead.service = "search"
    with pytest.raises(Unavailable, match="search unavailable: unreachable"):
        await dead.request("GET", "/v1/collection")
    await dead.aclose()


def test_kinds_nest_as_their_statuses_say():
    assert issubclass(ImageTooLarge, TooLarge) and issubclass(TooLarge, InvalidInput)
    assert issubclass(QueueFull, Unavailable)


def test_the_first_kind_in_the_mro_decides():
    from dogsearch.jobs.sources import JobInputError, SourceForbidden

    assert status_of(SourceForbidden("outside")) == 403 and status_of(JobInputError("bad csv")) == 422


async def test_no_server_path_reaches_a_caller():
    # A service's own failure names its files in the log only; a detail passed on from another service (any status)
    # loses them too. URLs and relative names stay.
    failing = app_raising(StoreError("cannot open /srv/dogsearch/vectors/segment-3: input/output error"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=failing), base_url="http://svc") as http:
        answer = (await http.get("/boom")).json()
    assert answer["detail"] == "cannot open segment-3: input/output error"

    app = FastAPI()

    @app.get("/boom")
    async def boom():
        from fastapi.responses import JSONResponse
        return JSONResponse({"detail": "weights missing: /root/.cache/dogsearch/vit.onnx (see http://x.org/a/b)"},
                            status_code=409)

    client = ServiceClient("http://svc", app=app)
    client.service = "embedder"
    with pytest.raises(Conflict) as caught:
        await client.request("GET", "/boom")
    assert caught.value.reason == "embedder: weights missing: vit.onnx (see http://x.org/a/b)"
    await client.aclose()


async def test_a_photo_or_box_refused_by_another_service_is_said_in_its_own_words():
    """The user's truncated JPEG or sliver of a box: which service noticed is nothing to them; any other answer is
    named by its service."""
    app = FastAPI()

    @app.get("/photo")
    async def photo():
        from fastapi.responses import JSONResponse
        return JSONResponse({"detail": "truncated or corrupt image: image file is truncated", "code": "image_rejected"},
                            status_code=422)

    @app.get("/other")
    async def other():
        from fastapi.responses import JSONResponse
        return JSONResponse({"detail": "k: at most 100", "code": "invalid_input"}, status_code=422)

    client = ServiceClient("http://svc", app=app)
    client.service = "embedder"
    with pytest.raises(ImageRejected) as caught:
        await client.request("GET", "/photo")
    assert caught.value.reason == "truncated or corrupt image: image file is truncated"
    with pytest.raises(InvalidInput) as caught:
        await client.request("GET", "/other")
    assert caught.value.reason == "embedder: k: at most 100"
    await client.aclose()


async def test_bodies_that_cannot_be_parsed_are_refused_with_a_status_and_code_as_the_domain_refuses(tmp_path,
                                                                                                     fake_model):
    # Starlette and FastAPI answered these 400 {"detail"} with no code: a form over the parser's limits is a 413,
    # a form or JSON that does not parse a 422, JSON sent as another type a 415 (as POST /v1/watches says them).
    async with serving(fake_all_in_one(tmp_path / "data", fake_model)) as gateway:  # a 20 MB body limit
        await _unparsable_bodies(gateway)


async def _unparsable_bodies(gateway: httpx.AsyncClient) -> None:
    dog = (await gateway.post("/v1/dogs", files={"image": ("d.jpg", solid((200, 30, 30)))})).json()["id"]
    multipart = "multipart/form-data; boundary=xx"
    forms = {
        "broken": ({"content": b"--xx\r\nnot a part header\r\n\r\n", "headers": {"content-type": multipart}},
                   422, "malformed_body", "Invalid multipart"),
        "no boundary": ({"content": b"--xx\r\n", "headers": {"content-type": "multipart/form-data"}},
                        422, "malformed_body", "Missing boundary"),
        "1,500 fields": ({"data": {f"f{i}": "x" for i in range(1500)}, "files": {"image": ("d.jpg", b"x")}},
                         413, "form_too_large", "Too many fields"),
        "a 3 MB field": ({"data": {"notes": "x" * 3_000_000}, "files": {"image": ("d.jpg", b"x")}},
                         413, "form_too_large", "exceeded maximum size"),
    }
    for name, (sent, status, code, said) in forms.items():
        answer = await gateway.post("/v1/search", **sent)
        assert (answer.status_code, answer.json()["code"]) == (status, code), (name, answer.text[:200])
        assert said in answer.json()["detail"], name
    as_json = {"content-type": "application/json"}
    for method, path in (("PATCH", f"/v1/dogs/{dog}"), ("POST", "/v1/jobs/index")):
        for body, said in ((b"[" * 100_000 + b"]" * 100_000, "nested too deeply"), (b'{"name": "\xff"}', "UTF-8"),
                           (b'{"name": ', "at position 9")):
            answer = await gateway.request(method, path, content=body, headers=as_json)
            assert (answer.status_code, answer.json()["code"]) == (422, "malformed_body"), (path, answer.text[:200])
            assert said in answer.json()["detail"]
        answer = await gateway.request(method, path, content=b'{"name": "Rex"}', headers={"content-type": "text/plain"})
        assert (answer.status_code, answer.json()["code"]) == (415, "unsupported_media"), (path, answer.text)
    answer = await gateway.patch(f"/v1/dogs/{dog}", json={"name": "Rex"})
    assert answer.status_code == 200 and answer.json()["payload"]["name"] == "Rex"


async def test_no_such_route_or_method_has_a_code_too(gateway):
    missing = await gateway.get("/v1/nothing-here")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found", "code": "not_found"})
    wrong = await gateway.put("/v1/search")
    assert (wrong.status_code, wrong.json()["code"]) == (405, "method_not_allowed")
    assert wrong.headers["allow"] == "POST"


async def test_json_a_parser_reads_but_nothing_can_send_on_is_refused_with_its_reason(tmp_path, fake_model):
    # Python's json reads "\ud800" (a lone surrogate: no UTF-8) and 5000-digit numbers; each was a 500 later: as the
    # validation error echoed it, as a job's fields were measured, as a filter was sent to the search service.
    (tmp_path / "in").mkdir()
    app = fake_all_in_one(tmp_path / "data", fake_model, jobs_options={"broker_url": None,
                                                                       "allowed_roots": [str(tmp_path / "in")]})
    async with serving(app) as gateway:
        dog = (await gateway.post("/v1/dogs", files={"image": ("d.jpg", solid((200, 30, 30)))})).json()["id"]
        folder = json.dumps(str(tmp_path / "in")).encode()
        sent = {  # raw bytes: httpx's json= cannot encode a lone surrogate
            ("PATCH", f"/v1/dogs/{dog}"): b'{"\\ud800": "x"}',
            ("POST", "/v1/jobs/index"): b'{"path": ' + folder[:-1] + b'/\\ud800"}',
            ("POST", "/v1/jobs/index "): b'{"path": ' + folder + b', "payload": {"\\ud800": "x"}}',
            ("POST", "/v1/watches"): b'{"dog_id": "' + dog.encode() + b'", "near": "\\udc00"}',
        }
        for (method, path), body in sent.items():
            answer = await gateway.request(method, path.strip(), content=body,
                                           headers={"content-type": "application/json"})
            assert (answer.status_code, answer.json()["code"]) == (422, "malformed_body"), (path, answer.text[:200])
            assert "lone surrogate" in answer.json()["detail"], path
        digits = await gateway.patch(f"/v1/dogs/{dog}", content=b'{"age": ' + b"9" * 5000 + b"}",
                                     headers={"content-type": "application/json"})
        assert (digits.status_code, digits.json()["code"]) == (422, "malformed_body"), digits.text[:200]
        assert "4300 digits" in digits.json()["detail"]
        listed = await gateway.get("/v1/dogs", params={"filter": '{"breed": "\\ud800"}'})
        assert listed.status_code == 422 and "lone surrogate" in listed.json()["detail"], listed.text[:200]
        fine = await gateway.patch(f"/v1/dogs/{dog}", content=b'{"name": "\\ud83d\\udc15 Rex"}',  # a pair: text
                                   headers={"content-type": "application/json"})
        assert fine.status_code == 200 and fine.json()["payload"]["name"] == "\U0001f415 Rex", fine.text[:200]


class Number(BaseModel):
    n: int


async def test_a_lone_surrogate_is_echoed_as_its_escape():
    # where no JsonText runs before the route (a service but the gateway): the echo raised UnicodeEncodeError
    app = FastAPI()
    install_error_mapping(app)

    @app.post("/n")
    async def take(body: Number) -> dict:
        return {}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        answer = await client.post("/n", content=b'{"n": "\\ud800"}', headers={"content-type": "application/json"})
    assert answer.status_code == 422 and answer.json()["detail"][0]["input"] == "\\ud800"
