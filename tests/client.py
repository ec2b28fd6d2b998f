"""A JSON POST to the in-process app (the `client` fixture) that must answer 200."""


def post_ok(client, path: str, **body) -> dict:
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    return r.json()
