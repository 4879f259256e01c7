"""The web app's JSON API: every endpoint, every kind of bad input, and a bounded load test."""

import asyncio
import inspect
import json
import math
import re
import socket
import threading
import time
import types

import numpy as np
import pytest
import scipy.signal

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx2")
from rbj_reference import WARM, rbj_sos, setting_db  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from tolerances import RESPONSE_DB_TOL, assert_unit_close  # noqa: E402

from neuraleq_jax import presets, server  # noqa: E402
from neuraleq_jax.audio import filtering  # noqa: E402
from neuraleq_jax.data.synthetic import make_synthetic  # noqa: E402
from neuraleq_jax.evaluation.baseline import LiteBaseline  # noqa: E402
from neuraleq_jax.model import paramspace, response  # noqa: E402
from neuraleq_jax.server import service  # noqa: E402
from neuraleq_jax.system import NeuralEQMorphingSystem  # noqa: E402

I16 = "needs system.describe/word_map (branch i16)"


@pytest.fixture(scope="module")
def system(tiny_system):
    """The session's tiny trained model: the API's behaviour does not depend on its size."""
    return tiny_system


@pytest.fixture(scope="module")
def client(system):
    with TestClient(server.create_app(system)) as test_client:
        yield test_client


def post(client, path, **body):
    return client.post(f"/api{path}", json=body)


def error_of(reply, status):
    assert reply.status_code == status, reply.text
    message = reply.json()["error"]
    assert isinstance(message, str) and message
    return message


# ---------------------------------------------------------------- endpoints


def test_index_lists_every_endpoint_and_each_exists(client):
    listed = client.get("/api").json()["endpoints"]
    assert set(listed) == set(server.ENDPOINTS)
    for entry in listed:
        method, path = entry.split()
        reply = client.request(method, path.split("?")[0])
        assert reply.status_code != 404 and reply.status_code != 405, entry


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/static/app.js").status_code == 200


def test_vocabulary(client, system):
    body = client.get("/api/vocabulary").json()
    assert [w["word"] for w in body["words"]] == list(system.vocabulary)
    assert body["details"] == hasattr(system, "word_info")
    assert body["has_map"] == hasattr(system, "word_map")


def test_generate_matches_the_facade_and_carries_response_and_coefficients(client, system):
    reply = post(
        client,
        "/generate",
        term="warm",
        variations=3,
        strength=0.5,
        seed=11,
        include=["response", "coefficients"],
        sample_rate=44_100,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    expected = system.generate_eq_from_semantic("warm", 3, strength=0.5, seed=11, as_array=True)
    np.testing.assert_array_equal(np.array(body["settings"], np.float32), expected)
    freqs = np.array(body["freqs_hz"])
    for row, curve in zip(expected, body["response_db"]):
        np.testing.assert_allclose(curve, setting_db(row, freqs), atol=RESPONSE_DB_TOL)
    bands = body["coefficients"][0]["bands"]
    for band, kind, (gain, freq, q) in zip(
        bands, paramspace.DEFAULT_LAYOUT.kinds, expected[0].astype(np.float64).reshape(5, 3)
    ):
        np.testing.assert_allclose(
            band["b"] + band["a"], rbj_sos(kind, gain, freq, q, 44_100), rtol=1e-12, atol=1e-15
        )


def test_centre_is_the_words_centre_scaled_by_strength(client, system):
    body = post(client, "/generate", term="bright", centre=True, strength=0.5).json()
    centre = np.asarray(system.morph_between_terms("bright", "bright", steps=2, as_array=True))[0]
    expected = filtering.scale_strength(centre, 0.5)
    np.testing.assert_allclose(body["settings"][0], expected, rtol=1e-6)
    gains = np.array(body["settings"][0])[paramspace.DEFAULT_LAYOUT.gain_indices]
    np.testing.assert_allclose(
        gains, centre[paramspace.DEFAULT_LAYOUT.gain_indices] * 0.5, rtol=1e-6, atol=1e-6
    )


def test_blend_and_dict_terms(client, system):
    text = post(client, "/generate", term="0.7 warm + 0.3 bright", seed=3).json()
    mapping = post(client, "/generate", term={"warm": 0.7, "bright": 0.3}, seed=3).json()
    np.testing.assert_array_equal(text["settings"], mapping["settings"])


def test_morph_goes_from_one_centre_to_the_other(client, system):
    body = post(client, "/morph", **{"from": "warm", "to": "bright", "steps": 9}).json()
    expected = system.morph_between_terms("warm", "bright", steps=9, as_array=True)
    np.testing.assert_array_equal(np.array(body["settings"], np.float32), expected)


def test_explore_plain_and_novel(client):
    plain = post(client, "/explore", n=5, seed=2).json()
    assert len(plain["settings"]) == 5
    paramspace.validate(np.array(plain["settings"]))
    novel = post(client, "/explore", n=4, novel=True, seed=2).json()
    assert len(novel["novelty_db"]) == 4
    assert novel["novelty_db"] == sorted(novel["novelty_db"], reverse=True)


def test_response_on_a_custom_grid(client):
    body = post(
        client,
        "/response",
        settings=[WARM.tolist(), paramspace.flat_setting().tolist()],
        points=100,
        low_hz=30,
        high_hz=15_000,
    ).json()
    freqs = np.array(body["freqs_hz"])
    np.testing.assert_allclose(freqs, np.geomspace(30, 15_000, 100), rtol=1e-12)
    np.testing.assert_allclose(
        body["response_db"][0], setting_db(WARM, freqs), atol=RESPONSE_DB_TOL
    )
    np.testing.assert_allclose(
        np.sum(body["bands_db"][0], axis=0), body["response_db"][0], atol=1e-4
    )
    assert (
        np.abs(body["response_db"][1]).max() < RESPONSE_DB_TOL
        and abs(body["loudness_gain_db"][1]) < RESPONSE_DB_TOL
    )


def test_loudness_gain_levels_pink_noise(client):
    """The bypass level: applying the gain to the EQ'd signal gives pink noise the dry
    signal's loudness, measured by the library's BS.1770 meter on filtered audio."""
    rate = 48_000
    rng = np.random.default_rng(0)
    spectrum = np.fft.rfft(rng.standard_normal(rate * 8))
    freqs = np.fft.rfftfreq(rate * 8, 1 / rate)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    spectrum[(freqs < 20) | (freqs > 20_000)] = 0  # the band the gain is computed over
    pink = np.fft.irfft(spectrum)
    pink *= 0.1 / np.sqrt(np.mean(pink**2))
    loud = WARM.copy()
    loud[paramspace.DEFAULT_LAYOUT.gain_indices] = [6, 4, 5, 6, 6]
    gain_db = post(client, "/response", setting=loud.tolist()).json()["loudness_gain_db"][0]
    wet = scipy.signal.sosfilt(response.second_order_sections(loud), pink) * 10 ** (gain_db / 20)
    change = filtering.integrated_loudness(wet, rate) - filtering.integrated_loudness(pink, rate)
    assert gain_db < -3 and abs(change) < 0.1


def test_coefficients_clamp_bands_above_nyquist(client):
    body = post(client, "/coefficients", setting=WARM.tolist(), sample_rate=8_000).json()
    assert body["clamped_bands"] == [4, 5]
    poles = [np.roots(band["a"]) for band in body["bands"]]
    assert max(np.abs(p).max() for p in poles) < 1  # every section stays stable


@pytest.mark.parametrize("fmt", presets.FORMATS)
def test_presets_export_then_import(client, fmt):
    exported = post(client, "/presets/export", setting=WARM.tolist(), format=fmt, names="warm")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"].startswith("attachment")
    assert exported.headers["content-type"].startswith(presets.MEDIA_TYPES[fmt])
    found = post(client, "/presets/import", text=exported.text).json()
    assert found["format"] == fmt
    np.testing.assert_allclose(found["settings"][0], WARM, atol=0.005 + 1e-3)
    if fmt in presets.ONE_SETTING_FORMATS:
        assert found["preamp_db"] == pytest.approx(presets.preamp_db(WARM))


def test_presets_import_reports_notes_and_fits_on_request(client):
    text = "Device: Headphones\n" + presets.apo_text(WARM)
    body = post(client, "/presets/import", text=text).json()
    assert any("Device" in note for note in body["notes"])
    ten = presets.apo_text(WARM) + "Filter 6: ON PK Fc 2000 Hz Gain 1 dB Q 1\n"
    assert "fit" in error_of(post(client, "/presets/import", text=ten), 400)
    fitted = post(client, "/presets/import", text=ten, fit=True).json()
    assert fitted["fit_rms_db"] < 1.0 and len(fitted["settings"]) == 1


INJECTED_NAME = "warm\r\nPreamp: 15 dB\nFilter 9: ON PK Fc 1000 Hz Gain 12 dB Q 1\u2028\x1b[2J"


@pytest.mark.parametrize("fmt", presets.FORMATS)
def test_presets_export_writes_names_inert(client, fmt):
    """A name cannot add a line that Equalizer APO obeys, nor a control character: the file
    reads back with our own reader as the one setting it was, its name on one line."""
    exported = post(
        client, "/presets/export", setting=WARM.tolist(), format=fmt, names=[INJECTED_NAME]
    )
    assert exported.status_code == 200, exported.text
    lines = re.split(r"\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", exported.text)
    obeyed = [line for line in lines if re.match(r"\s*(preamp|filter\s*\d*)\s*:", line, re.I)]
    if fmt in ("apo", "rew"):
        assert len(obeyed) == 1 + paramspace.DEFAULT_LAYOUT.n_bands, obeyed
    assert "\x1b" not in exported.text and "\r" not in exported.text
    found = presets.parse_preset_text(exported.text)
    assert found.format == fmt and found.notes == []
    np.testing.assert_allclose(found.settings, [WARM], atol=0.005 + 1e-3)
    if fmt != "easyeffects":  # which embeds no name
        assert found.names == ["warm Preamp: 15 dB Filter 9: ON PK Fc 1000 Hz Gain 12 dB Q 1 [2J"]
    assert post(client, "/presets/import", text=exported.text).json()["names"] == found.names


def test_describe_and_map(client, system):
    if not hasattr(system, "describe") or not hasattr(system, "word_map"):
        pytest.skip(I16)
    body = post(client, "/describe", setting=WARM.tolist(), k=3).json()
    distances = [entry["distance_db"] for entry in body["nearest"][0]]
    assert len(distances) == 3 and distances == sorted(distances)
    assert {e["word"] for e in body["nearest"][0]} <= set(system.vocabulary)
    word_map = client.get("/api/map").json()
    assert word_map["words"] == list(system.vocabulary)
    assert np.array(word_map["xy"]).shape == (len(system.vocabulary), 2)


def test_word_info(client, system):
    if not hasattr(system, "word_info"):
        pytest.skip(I16)
    body = client.get("/api/word", params={"word": system.vocabulary[0]}).json()
    assert body["word"] == system.vocabulary[0]
    assert body["confidence"] is None or 0.0 <= body["confidence"] <= 1.0


def test_a_system_lacking_what_the_server_needs_is_refused_naming_it(system):
    bare = types.SimpleNamespace(vocabulary=system.vocabulary, layout=system.layout)
    with pytest.raises(TypeError, match=r"SimpleNamespace lacks describe, explore_latent_space"):
        server.create_app(bare)


def _parameters(function) -> dict[str, inspect.Parameter]:
    return dict(list(inspect.signature(function).parameters.items())[1:])  # without self


@pytest.mark.parametrize("implementation", [NeuralEQMorphingSystem, LiteBaseline])
def test_the_facade_and_the_baseline_offer_what_the_server_needs(implementation):
    # every member of the Protocol, and every argument it names in the same place (positional
    # or keyword-only); any further argument has a default
    expected = {"layout", "vocabulary", "generate_eq_from_semantic", "morph_between_terms"}
    expected |= {"explore_latent_space", "word_info", "word_map", "describe"}
    assert set(service.SERVED_MEMBERS) == expected
    for name in expected - {"layout", "vocabulary"}:
        wanted = _parameters(getattr(service.ServedSystem, name))
        offered = _parameters(getattr(implementation, name))
        for arg, parameter in wanted.items():
            assert arg in offered, (implementation.__name__, name, arg)
            keyword_only = offered[arg].kind is inspect.Parameter.KEYWORD_ONLY
            assert keyword_only == (parameter.kind is inspect.Parameter.KEYWORD_ONLY), (name, arg)
        for arg in set(offered) - set(wanted):
            assert offered[arg].default is not inspect.Parameter.empty or offered[arg].kind in (
                inspect.Parameter.VAR_KEYWORD,
                inspect.Parameter.VAR_POSITIONAL,
            ), (implementation.__name__, name, arg)
    made = LiteBaseline() if implementation is LiteBaseline else implementation(latent_dim=4)
    assert service.missing_members(made) == []


@pytest.fixture(scope="module")
def baseline_client():
    baseline = LiteBaseline()
    baseline.fit(make_synthetic(per_word=12, seed=1))
    with TestClient(server.create_app(baseline)) as test_client:
        yield baseline, test_client


def test_the_server_serves_the_lite_baseline(baseline_client):
    baseline, client = baseline_client
    words = client.get("/api/vocabulary").json()["words"]
    assert [w["word"] for w in words] == list(baseline.vocabulary)
    assert words[0]["sources"] == [
        {"name": "data", "settings": 12, "contributors": None, "agreement": None}
    ]
    body = post(client, "/generate", term="warm", variations=3, strength=0.5, seed=4).json()
    expected = baseline.generate_eq_from_semantic("warm", 3, strength=0.5, seed=4, as_array=True)
    np.testing.assert_array_equal(np.array(body["settings"], np.float32), expected)
    path = post(client, "/morph", **{"from": "warm", "to": "bright", "steps": 5}).json()
    centres = baseline.centre_settings()
    ends = np.array(path["settings"], np.float32)[[0, -1]]
    warm, bright = baseline.vocabulary.index("warm"), baseline.vocabulary.index("bright")
    assert_unit_close(ends, centres[[warm, bright]], 1e-5)
    novel = post(client, "/explore", n=4, novel=True, seed=2).json()
    assert len(novel["settings"]) == 4
    assert novel["novelty_db"] == sorted(novel["novelty_db"], reverse=True)
    nearest = post(client, "/describe", setting=centres[warm].tolist(), k=2).json()["nearest"]
    assert nearest[0][0]["word"] == "warm" and nearest[0][0]["distance_db"] < 1e-3
    word_map = client.get("/api/map").json()
    assert np.array(word_map["xy"]).shape == (len(baseline.vocabulary), 2)
    # a blend is the facade's alone: the baseline's one-line TypeError answers 400
    assert "single word" in error_of(post(client, "/generate", term={"warm": 1.0}), 400)


# ---------------------------------------------------------------- bad input

BAD = [
    ("/generate", {"term": "wram"}, 400, "warm"),
    ("/generate", {}, 400, "term"),
    ("/generate", {"term": 5}, 400, "term"),
    ("/generate", {"term": "x" * 201}, 400, "200"),
    ("/generate", {"term": "warm", "variations": 0}, 400, "variations"),
    ("/generate", {"term": "warm", "variations": 10**8}, 400, "variations"),
    ("/generate", {"term": "warm", "variations": 2.5}, 400, "variations"),
    ("/generate", {"term": "warm", "strength": -1}, 400, "strength"),
    ("/generate", {"term": "warm", "seed": -3}, 400, "seed"),
    ("/generate", {"term": "warm", "centre": "yes"}, 400, "centre"),
    ("/generate", {"term": "warm", "include": ["audio"]}, 400, "include"),
    ("/generate", {"term": "warm", "sample_rate": 1000}, 400, "sample_rate"),
    ("/generate", {"term": "warm", "variatons": 3}, 400, "variatons"),
    ("/morph", {"from": "warm", "to": "bright", "steps": 1}, 400, "steps"),
    ("/morph", {"from": "warm", "to": "bright", "steps": 10**6}, 400, "steps"),
    ("/morph", {"from": "warm"}, 400, "to"),
    ("/explore", {"n": 10**8}, 400, "n must"),
    ("/explore", {"novel": 3}, 400, "novel"),
    ("/response", {}, 400, "setting"),
    ("/response", {"setting": [1, 2, 3]}, 400, "15"),
    ("/response", {"setting": WARM.tolist(), "settings": [WARM.tolist()]}, 400, "exactly one"),
    ("/response", {"setting": [5000.0] + WARM.tolist()[1:]}, 400, "band1_gain"),
    ("/response", {"setting": WARM.tolist()[:1] + [5000.0] + WARM.tolist()[2:]}, 400, "band1_freq"),
    ("/response", {"setting": ["a"] * 15}, 400, "numbers"),
    ("/response", {"settings": [WARM.tolist()] * 257}, 413, "256"),
    ("/response", {"setting": WARM.tolist(), "points": 10**6}, 400, "points"),
    ("/response", {"setting": WARM.tolist(), "low_hz": 30_000}, 400, "low_hz"),
    (
        "/response",
        {"setting": WARM.tolist(), "sample_rate": 22_050, "high_hz": 10_000},
        400,
        "Nyquist",
    ),
    ("/coefficients", {"settings": [WARM.tolist()] * 2}, 400, "setting"),
    ("/describe", {"setting": WARM.tolist(), "k": 0}, 400, "k must"),
    ("/presets/export", {"setting": WARM.tolist(), "format": "wav"}, 400, "format"),
    ("/presets/export", {"settings": [WARM.tolist()] * 2, "format": "apo"}, 400, "one setting"),
    ("/presets/export", {"setting": WARM.tolist(), "format": "json", "names": 3}, 400, "names"),
    ("/presets/import", {"text": ""}, 400, "text"),
    ("/presets/import", {"text": "Filter 1: ON HP Fc 80 Hz"}, 400, "HP"),
    ("/presets/import", {"text": "{}", "format": "xml"}, 400, "format"),
]


@pytest.mark.parametrize("path,body,status,needle", BAD)
def test_bad_input_answers_4xx_naming_the_problem(client, path, body, status, needle):
    reply = post(client, path, **body)
    if reply.status_code == 501:  # describe before the model has it: checked elsewhere
        pytest.skip(I16)
    assert needle in error_of(reply, status)


def test_malformed_bodies_and_routes(client):
    assert "JSON" in error_of(client.post("/api/generate", content=b"{nope", headers=JSON), 400)
    assert "object" in error_of(client.post("/api/generate", json=[1, 2]), 400)
    assert "strength" in error_of(
        client.post("/api/generate", content=b'{"term": "warm", "strength": NaN}', headers=JSON),
        400,
    )
    huge = b'{"text": "' + b"x" * (server.LIMITS["body_bytes"] + 10) + b'"}'
    assert "bytes" in error_of(client.post("/api/presets/import", content=huge, headers=JSON), 413)
    assert "GET /api" in error_of(client.get("/api/nothing"), 404)
    assert "GET" in error_of(client.get("/api/generate"), 405)
    assert "unknown word" in error_of(client.get("/api/word?word=zzz"), 404)


JSON = {"Content-Type": "application/json"}
POSTS = [path for _, path, method in server.endpoints.ROUTES if method == "POST"]
VALID_BODIES = {
    "/generate": {"term": "warm"},
    "/morph": {"from": "warm", "to": "bright", "steps": 3},
    "/explore": {"n": 2},
    "/describe": {"setting": WARM.tolist()},
    "/response": {"setting": WARM.tolist()},
    "/coefficients": {"setting": WARM.tolist()},
    "/presets/export": {"setting": WARM.tolist(), "format": "apo"},
    "/presets/import": {"text": presets.apo_text(WARM)},
}


def test_every_action_has_a_valid_body_here():
    assert sorted(VALID_BODIES) == sorted(POSTS)


CROSS_SITE = {"Origin": "http://evil.example", "Content-Type": "application/json"}


@pytest.mark.parametrize("path", POSTS)
def test_every_action_refuses_another_sites_page(client, path):
    """A page on another site sends its own Origin: refused before the body is read, on
    every endpoint that acts, whatever it asks (a valid body here)."""
    body = json.dumps(VALID_BODIES[path]).encode()
    reply = client.post(f"/api{path}", content=body, headers=CROSS_SITE)
    message = error_of(reply, 403)
    assert "http://evil.example" in message and "http://testserver" in message
    own = {"Origin": "http://testserver", "Content-Type": "application/json; charset=utf-8"}
    assert client.post(f"/api{path}", content=body, headers=own).status_code in (200, 501)


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_every_action_refuses_a_body_that_is_not_declared_json(client, path, content_type):
    """The cross-site "simple" request of issue 32 (text/plain, a JSON body) and its kin: a
    browser sends them without a CORS preflight, so the type alone must refuse them."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    body = json.dumps(VALID_BODIES[path]).encode()
    message = error_of(client.post(f"/api{path}", content=body, headers=headers), 415)
    assert "application/json" in message and (content_type or "missing") in message


def test_the_cross_site_simple_request_of_issue_32_is_refused(client):
    simple = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    reply = client.post("/api/generate", content=b'{"term": "warm"}', headers=simple)
    assert "Origin" in error_of(reply, 403)
    assert "settings" not in reply.json()


def test_host_check_when_bound_to_loopback(system):
    app = server.create_app(system, allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://evil.example") as other:
        assert other.get("/api/vocabulary").status_code == 400


# ---------------------------------------------------------------- a real server under load


@pytest.fixture(scope="module")
def live_url(system):
    """uvicorn on a socket from :func:`server.listen` (port 0: a free one), as ``serve`` runs it."""
    import uvicorn

    sock = server.listen("127.0.0.1", 0)
    config = uvicorn.Config(server.create_app(system), log_level="warning")
    live = uvicorn.Server(config)
    thread = threading.Thread(target=live.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not live.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    live.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_200_concurrent_requests_on_loopback(live_url, system):
    words = list(system.vocabulary)

    async def hammer():
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=live_url, limits=limits, timeout=120) as http:
            calls = [
                http.post(
                    "/api/generate",
                    json={"term": words[i % len(words)], "seed": i, "include": ["response"]},
                )
                if i % 2 == 0
                else http.post("/api/response", json={"setting": WARM.tolist()})
                for i in range(200)
            ]
            return await asyncio.gather(*calls)

    replies = asyncio.run(hammer())
    assert [r.status_code for r in replies] == [200] * 200
    for i in (0, 2, 198):  # answers belong to their own request
        expected = system.generate_eq_from_semantic(words[i % len(words)], 1, seed=i, as_array=True)
        np.testing.assert_array_equal(np.array(replies[i].json()["settings"], np.float32), expected)
    assert all(math.isfinite(v) for v in replies[1].json()["response_db"][0])


# ---------------------------------------------------------------- neuraleq serve's address


def test_serve_prints_the_port_it_got_and_runs_on_its_socket(system, monkeypatch, capsys):
    import uvicorn

    given = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: given.extend(sockets))
    sock = server.listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    assert server.serve(system, sock=sock) == 0
    assert given == [sock] and port > 0 and sock.fileno() == -1  # closed once served
    words = len(system.vocabulary)
    assert capsys.readouterr().out == (
        f"neuraleq: serving {words} words on http://127.0.0.1:{port}/ (Ctrl+C stops)\n"
    )


def test_a_busy_port_fails_in_one_line_before_the_model_loads(tmp_path, capsys):
    from neuraleq_jax import cli

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        # a workdir with no model: the port is checked first, so the port is what is reported
        status = cli.main(["serve", "--workdir", str(tmp_path), "--port", str(port)])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1, err
    assert err.startswith(f"neuraleq serve: cannot listen on http://127.0.0.1:{port}/: ")
    assert "choose another --port (--port 0 picks a free one)" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--port", "70000"], "argument --port: must be a port number from 0 to 65535"),
        (["--port", "-1"], "argument --port: must be a port number from 0 to 65535"),
        (["--host", "no-such-host.invalid"], "is neither an IP address nor a known name"),
    ],
)
def test_a_bad_address_is_refused_in_one_line(args, message, tmp_path, capsys):
    from neuraleq_jax import cli

    try:
        status = cli.main(["serve", "--workdir", str(tmp_path), *args])
    except SystemExit as exit_:  # argparse's refusal
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and message in err, err


# ---------------------------------------------------------------- strength and the word's setting


def test_generate_and_morph_report_the_gains_a_strength_clipped(client, system):
    # the tiny model's centres are bolder than its variations: warm's centre boosts ~3.6 dB
    centre = np.asarray(system.morph_between_terms("warm", "warm", steps=2, as_array=True))[0]
    gains = list(paramspace.DEFAULT_LAYOUT.gain_indices)
    strength = float(12.5 / np.max(np.abs(centre[gains])))
    assert strength <= 4, "the tiny model's warm centre is too gentle for this test"
    bands = [b + 1 for b in np.flatnonzero(np.abs(centre[gains]) * strength > 12.0)]
    assert 0 < len(bands) < 5
    body = post(client, "/generate", term="warm", centre=True, strength=strength).json()
    assert body["clipped_bands"] == bands
    assert len(body["notes"]) == 1 and "past ±12 dB" in body["notes"][0]
    np.testing.assert_allclose(
        np.array(body["settings"])[0, gains], np.clip(centre[gains] * strength, -12, 12), rtol=1e-6
    )
    morph = post(client, "/morph", **{"from": "warm", "to": "warm"}, steps=2, strength=strength)
    morph = morph.json()
    assert morph["clipped_bands"] == bands and morph["notes"] == body["notes"]
    np.testing.assert_allclose(morph["settings"], [body["settings"][0]] * 2, rtol=1e-6)
    gentle = post(client, "/generate", term="warm", centre=True, strength=1.0).json()
    assert gentle["clipped_bands"] == [] and gentle["notes"] == []


@pytest.mark.parametrize(
    "path, body, expected",
    [
        ("/generate", {"term": "warm", "strength": 4.5}, "strength must be a number in [0, 4]"),
        ("/morph", {"from": "warm", "to": "bright", "strength": 4.5}, "strength must be a number"),
        ("/generate", {"term": "warm", "centre": True, "variations": 3}, "variations must be 1"),
    ],
)
def test_strength_past_4_and_centre_with_variations_are_refused(client, path, body, expected):
    assert expected in error_of(client.post(f"/api{path}", json=body), 400)


def test_the_api_states_the_strength_limit_the_command_line_shares(client):
    import argparse

    from neuraleq_jax.cli.common import strength

    limit = client.get("/api").json()["limits"]["strength"]
    assert limit == 4 and strength(str(limit)) == limit
    with pytest.raises(argparse.ArgumentTypeError):
        strength(str(limit + 0.01))
