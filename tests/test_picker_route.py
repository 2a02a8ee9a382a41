"""The token picker's route, POST /astar/v1/tokens, in the stand-in WebUI (real CLIP vocabulary).

The route is added by the script's ``app_started`` callback, as the WebUI calls it with its FastAPI app, and
is called over HTTP with FastAPI's TestClient.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from tests.conftest import token_client

SCRIPT = str(pathlib.Path(__file__).resolve().parents[1] / "scripts" / "astar.py")
ROUTE = "/astar/v1/tokens"


@pytest.fixture
def client(webui):
    return token_client(webui, SCRIPT)


def post(client, prompt, concepts=None, status=200, **extra):
    body = {"prompt": prompt, **({} if concepts is None else {"concepts": concepts}), **extra}
    res = client.post(ROUTE, json=body)
    assert res.status_code == status, res.text
    return res.json()


def words(data, part=0):
    return [(w["text"], w["columns"]) for w in data["parts"][part]["words"]]


def test_words_and_their_columns(client):
    data = post(client, "a cat and a dog")
    assert words(data) == [("a", [1]), ("cat", [2]), ("and", [3]), ("a", [4]), ("dog", [5])]
    assert data["parts"][0]["chunks"] == [{"index": 0, "tokens": 5, "first_column": 1, "break": False}]
    assert data["extra_networks"] == [] and data["warnings"] == [] and data["concepts"] == []
    assert data["model"].startswith("tiny-sd1.safetensors") and data["refusal"] is None


def test_a_split_word_is_one_entry_with_all_its_columns(client):
    data = post(client, "a hippopotamus, a cat", "hippopotamus")
    entry = data["parts"][0]["words"][1]
    assert entry["text"] == "hippopotamus" and entry["columns"] == [2, 3, 4]
    assert entry["concepts"] == ["hippopotamus"]
    assert [w["kind"] for w in data["parts"][0]["words"]] == ["word", "word", "punct", "word", "word"]
    assert data["parts"][0]["concepts"] == [{"label": "hippopotamus", "columns": [2, 3, 4]}]


def test_emphasis_is_stripped_and_prompt_editing_uses_the_first_step(client):
    data = post(client, "a (cat:1.3) and a [dog], ((bird))")
    assert [w for w, _ in words(data)] == ["a", "cat", "and", "a", "dog", ",", "bird"]
    data = post(client, "a [cat:horse:5] and a dog", "cat, horse")
    assert [w for w, _ in words(data)] == ["a", "cat", "and", "a", "dog"]
    assert data["warnings"] == ["'horse' is not in the prompt"]


def test_break_and_long_prompts(client):
    data = post(client, "a cat BREAK a dog", "dog")
    part = data["parts"][0]
    assert [c["break"] for c in part["chunks"]] == [False, True]
    assert words(data) == [("a", [1]), ("cat", [2]), ("a", [78]), ("dog", [79])]
    assert part["concepts"] == [{"label": "dog", "columns": [79]}]

    long = "a cat, " + ", ".join(["tall green grass field"] * 20) + ", a dog"
    data = post(client, long, "cat, dog")
    part = data["parts"][0]
    assert len(part["chunks"]) == 2 and not part["chunks"][1]["break"]  # the 75-token limit, not a BREAK
    assert part["chunks"][1]["first_column"] == 78
    dog = [w for w in part["words"] if w["text"] == "dog"]
    assert dog[0]["chunk"] == 1 and dog[0]["columns"][0] >= 78 and dog[0]["concepts"] == ["dog"]
    assert all(1 <= c <= 75 for w in part["words"] if w["chunk"] == 0 for c in w["columns"])


def test_and_parts_with_weights(client):
    data = post(client, "a cat AND a dog:0.5", "cat, dog")
    assert [p["text"].strip() for p in data["parts"]] == ["a cat", "a dog"]
    assert [p["weight"] for p in data["parts"]] == [1.0, 0.5]
    assert words(data, 1) == [("a", [1]), ("dog", [2])]
    assert data["concepts"] == [{"label": "cat", "found": True}, {"label": "dog", "found": True}]
    assert data["warnings"] == []


def test_extra_network_tags_are_removed_and_listed(client):
    data = post(client, "a cat <lora:my_style:0.8> and a dog <hypernet:h1:1>")
    assert [w for w, _ in words(data)] == ["a", "cat", "and", "a", "dog"]
    assert data["extra_networks"] == [
        {"text": "<lora:my_style:0.8>", "network": "lora", "name": "my_style", "args": ["my_style", "0.8"]},
        {"text": "<hypernet:h1:1>", "network": "hypernet", "name": "h1", "args": ["h1", "1"]},
    ]


def test_textual_inversion_embeddings(webui):
    from tests.standin.prompt import Embedding

    webui.make_model("sd1", name="emb.safetensors", embeddings=[Embedding("mystyle", 2)], use=True)
    data = post(token_client(webui, SCRIPT), "a cat in mystyle and a dog", "mystyle")
    entry = next(w for w in data["parts"][0]["words"] if w["kind"] == "embedding")
    assert entry == {"text": "mystyle", "columns": [4, 5], "chunk": 0, "kind": "embedding", "concepts": ["mystyle"]}
    assert [w for w, _ in words(data)] == ["a", "cat", "in", "mystyle", "and", "a", "dog"]


def test_concepts_select_words_and_warn_like_a_generation(client):
    data = post(client, "a red car and a cat and a cat", "red car, cat, #5, catt")
    by_word = [(w["text"], w["concepts"]) for w in data["parts"][0]["words"]]
    assert by_word == [("a", []), ("red", ["red car"]), ("car", ["red car"]), ("and", []), ("a", ["#5"]),
                       ("cat", ["cat"]), ("and", []), ("a", []), ("cat", ["cat"])]
    assert data["concepts"] == [{"label": "red car", "found": True}, {"label": "cat", "found": True},
                                {"label": "#5", "found": True}, {"label": "catt", "found": False}]
    assert data["warnings"] == ["'catt' is not in the prompt (did you mean 'cat'?)"]

    data = post(client, "a cat", ["cat", 2])  # the API's list form
    assert data["parts"][0]["words"][1]["concepts"] == ["cat", "#2"]
    assert "share token column 2" in data["warnings"][0]

    data = post(client, "a cat", "cat, #x")  # a malformed item is a warning: the user is still typing
    assert data["concepts"] == [] and "#x" in data["warnings"][0]


def test_suggested_concepts(client):
    data = post(client, "a photo of a frog wearing a crown <lora:x:1>")
    assert data["suggested"] == ["frog", "crown"] and data["suggested_text"] == "frog, crown"
    assert post(client, "a cat AND a dog")["suggested"] == ["cat", "dog"]
    assert post(client, "")["suggested"] == []


def test_words_are_shown_as_typed(client):
    data = post(client, "a café and a <img src=x onerror=alert(1)>")
    texts = [w for w, _ in words(data)]
    assert texts[1] == "café"
    assert texts[4:] == ["<", "img", "src", "=", "x", "onerror", "=", "alert", "1", ">"]


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "not JSON"),
    (b"", 400, "not JSON"),
    (b'["a cat"]', 422, "JSON object"),
    (b"{}", 422, "'prompt' is required"),
    (b'{"prompt": 5}', 422, "'prompt' is required and must be a string"),
    (b'{"prompt": "a cat", "concepts": 5}', 422, "'concepts' must be"),
    (b'{"prompt": "a cat", "concepts": [1.5]}', 422, "concepts"),
    (b'{"prompt": "a cat", "steps": "many"}', 422, "'steps'"),
    (b'{"prompt": "a cat", "steps": 0}', 422, "'steps'"),
    (b'{"prompt": "a cat", "negative": "x"}', 422, "unknown field"),
    (json.dumps({"prompt": "a" * 20001}).encode(), 422, "longer than"),
])
def test_malformed_requests_get_a_json_error(client, body, status, message):
    res = client.post(ROUTE, content=body, headers={"Content-Type": "application/json"})
    assert res.status_code == status and message in res.json()["error"], res.text


def test_no_model_or_an_unreadable_tokenizer_is_503(client, webui):
    webui.shared.sd_model = None
    res = client.post(ROUTE, json={"prompt": "a cat"})
    assert res.status_code == 503 and "no model is loaded" in res.json()["error"]
    webui.shared.sd_model = object()
    res = client.post(ROUTE, json={"prompt": "a cat"})
    assert res.status_code == 503 and "tokenizer cannot be used" in res.json()["error"]


def test_the_route_is_added_once_documented_and_post_only(client, webui):
    app = client.app
    webui.script_callbacks.app_started_callback(None, app)
    assert [r.path for r in app.routes].count(ROUTE) == 1
    assert client.get(ROUTE).status_code == 405
    spec = app.openapi()["paths"][ROUTE]["post"]
    assert "token columns" in spec["summary"]
    assert spec["requestBody"]["content"]["application/json"]["schema"]["required"] == ["prompt"]


def test_the_callback_is_registered_once_across_reloads(webui):
    from astar_ext.webui import route, script

    assert ("on_app_started", route.on_app_started) in script.CALLBACKS
    webui.start(SCRIPT)
    webui.start(SCRIPT)  # the script file runs again, as on "Reload UI"
    names = [c.callback for c in webui.script_callbacks.callback_map["callbacks_app_started"]]
    assert names.count(route.on_app_started) == 1
