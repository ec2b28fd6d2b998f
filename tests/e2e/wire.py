"""What the explorer draws and prints, read from the API as the page reads it.

The explorer asks for one layer's heads as bytes (/api/attention encoding uint8: value = byte x scale)
and draws the arrows, lines and chips from them; everything it prints (the heatmap's cells and hover,
the description) comes from the selected head's floats (/api/head parts pattern, or moved). A test
compares the screen with the same answers."""

import base64

import httpx

# An arrow's data-weight is w.toFixed(4) of the byte's value: within half a unit of the 4th decimal of it
# (plus float32 rounding of byte x scale, ~1e-8), and within half a byte step (scale / 2) of the float.
TO_FIXED_4 = 5.1e-5


def post(server: str, path: str, **body) -> dict:
    r = httpx.post(server + path, json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def decode(a: dict) -> list[list[list[float]]]:
    """A binary pattern ({shape, packing, scale, data}) -> [head][query][key] values (0 above a causal diagonal)."""
    assert a["dtype"] == "uint8", a["dtype"]
    raw, (H, n, _), k = base64.b64decode(a["data"]), a["shape"], 0
    out = [[[0.0] * n for _ in range(n)] for _ in range(H)]
    for h in range(H):
        for i in range(n):
            for j in range(i + 1 if a["packing"] == "tril" else n):
                out[h][i][j] = raw[k] * a["scale"]
                k += 1
    return out


def drawn_layer(server: str, layer: int, measure: str = "weight", **common) -> tuple[dict, list]:
    """(the answer, [head][query][key] values) of the layer as the explorer draws it."""
    att = post(server, "/api/attention", **common, layers=[layer], measure=measure, encoding="uint8")
    return att, decode(att["attention"][str(layer)])


def exact_head(server: str, layer: int, head: int, measure: str = "weight", **common) -> list[list[float]]:
    """The selected head's [query][key] floats as the explorer prints them: weights, or what it moved."""
    part = "moved" if measure == "moved" else "pattern"
    return post(server, "/api/head", **common, layer=layer, head=head, parts=[part])[part]
