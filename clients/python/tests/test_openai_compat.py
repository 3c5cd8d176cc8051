"""quarry's OpenAI-compatible routes through the official `openai` package: `/v1/models` lists the
model `/v1/embeddings` serves, the vectors it returns (the package asks for base64) are the ones
quarry computes, and token-id input or an unknown model is refused in OpenAI's error shape."""

import httpx
import openai
import pytest


def test_models_and_embeddings_through_the_openai_package(server):
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    ids = [m.id for m in oa.models.list().data]
    assert len(ids) == 1, ids
    model = ids[0]
    assert oa.models.retrieve(model).id == model

    texts = ["red apple", "green pear", "the kettle boils"]
    got = oa.embeddings.create(model=model, input=texts)
    assert [d.index for d in got.data] == [0, 1, 2]
    want = httpx.post(
        server.url + "/v1/embeddings",
        json={"model": model, "input": texts, "encoding_format": "float"},
    ).json()
    for d, w in zip(got.data, want["data"]):
        assert d.embedding == pytest.approx(w["embedding"], abs=1e-7)
        assert len(d.embedding) == len(w["embedding"]) > 0
    one = oa.embeddings.create(model=model, input="green pear", encoding_format="float")
    assert one.data[0].embedding == pytest.approx(want["data"][1]["embedding"], abs=1e-7)


def test_token_ids_and_unknown_models_are_refused_as_openai_errors(server):
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    model = oa.models.list().data[0].id
    with pytest.raises(openai.BadRequestError) as e:
        oa.embeddings.create(model=model, input=[[101, 2023, 102]])
    assert e.value.param == "input"
    assert e.value.type == "invalid_request_error"
    assert "token ids" in e.value.message
    with pytest.raises(openai.NotFoundError) as e:
        oa.embeddings.create(model="text-embedding-3-small", input="x")
    assert e.value.param == "model"
    with pytest.raises(openai.NotFoundError):
        oa.models.retrieve("text-embedding-3-small")
