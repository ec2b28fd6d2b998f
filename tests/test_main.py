"""The app starts, loads the default model in lifespan, and its page says which models are loaded."""

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings


def test_index_lists_the_models(registry, smol):
    app = create_app(Settings(preload="default"), registry=registry)
    with TestClient(app) as client:
        page = client.get("/")
    assert page.status_code == 200
    assert "smollm2-135m-instruct" in page.text and "all-minilm-l6-v2" in page.text
    assert "loaded" in page.text and ">30<" in page.text  # SmolLM2's 30 layers, from the loaded model
    assert client.app.state.registry is registry


def test_static_files_are_served(registry):
    with TestClient(create_app(Settings(preload="none"), registry=registry)) as client:
        css = client.get("/static/css/app.css")
    assert css.status_code == 200 and "prefers-color-scheme" in css.text
