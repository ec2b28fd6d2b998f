// Talking to the HTTP API: JSON in, JSON out, errors as thrown ApiError with the server's message.
// request() is one call; post() gives pages with a single need a channel that keeps only its newest
// request. The explorer's data layer (explorer/data.js) keys its requests by state instead.

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || `request failed (${status})`);
    this.status = status;
    this.body = body;
  }
}

const controllers = new Map();
let inflight = 0;
export const busy = new EventTarget();

function setBusy(delta) {
  inflight += delta;
  busy.dispatchEvent(new CustomEvent("change", { detail: inflight > 0 }));
}

// request(path, body, signal) -> the JSON answer; ApiError for an error answer, AbortError if aborted
export async function request(path, body, signal) {
  setBusy(+1);
  try {
    const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal });
    const data = await r.json().catch(() => null);
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  } finally {
    setBusy(-1);
  }
}

// post(channel, path, body): aborts the previous request on the same channel; resolves to null
// when this request was itself superseded (the caller then does nothing).
export async function post(channel, path, body) {
  controllers.get(channel)?.abort();
  const ctrl = new AbortController();
  controllers.set(channel, ctrl);
  try {
    const data = await request(path, body, ctrl.signal);
    return controllers.get(channel) === ctrl ? data : null;
  } catch (e) {
    if (e.name === "AbortError" || controllers.get(channel) !== ctrl) return null;
    throw e;
  } finally {
    if (controllers.get(channel) === ctrl) controllers.delete(channel);
  }
}

// A binary-encoded pattern ({dtype, shape, packing, scale, data}) -> Float32Array [H*n*n], row-major
export function decodePattern(a) {
  const bin = atob(a.data);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);  // 8x faster than Uint8Array.from(str, fn)
  const [H, n] = a.shape;
  const out = new Float32Array(H * n * n);
  if (a.dtype !== "uint8") throw new Error(`decodePattern: unsupported dtype ${a.dtype}`);
  if (a.packing === "full") {
    for (let i = 0; i < out.length; i++) out[i] = bytes[i] * a.scale;
    return out;
  }
  let k = 0;
  for (let h = 0; h < H; h++)
    for (let i = 0; i < n; i++)
      for (let j = 0; j <= i; j++) out[(h * n + i) * n + j] = bytes[k++] * a.scale;
  return out;
}
