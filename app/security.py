"""Security headers on every response, and which Host names the server answers to.

The CSP forbids inline scripts: data reaches pages as <script type="application/json">, code only as
files from this origin. Embeds may be framed by any page, a slide deck opened from a file included.

Host: every link the server writes (embed snippets, oEmbed, discovery) starts with the public URL
when one is set, else with the request's own address, so a request must not choose it: a Host the
operator did not allow gets 400 (Starlette's TrustedHostMiddleware), or a shared cache could hand
everyone an iframe pointing at the host a stranger sent."""

import socket
from urllib.parse import urlsplit

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-src 'self'{public}; frame-ancestors {ancestors}")


# `*` matches only network schemes (CSP3 §6.7.2.8): a page opened from a file (a reveal.js or Quarto deck
# saved to disk) is a `file:` ancestor and must be named, or Chromium refuses the frame.
EMBED_ANCESTORS = "* file:"
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
ANY_INTERFACE = ("0.0.0.0", "::", "")


def machine_hosts() -> set[str]:
    """This machine's names and addresses: what a reader on the same network types to reach it."""
    names = {socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        try:
            names |= {info[4][0] for info in socket.getaddrinfo(name, None)}
        except OSError:  # a host name that does not resolve: the name alone
            pass
    try:  # the address of the interface that routes outwards (connect() on UDP sends nothing)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1 (RFC 5737): never routed to anyone
            names.add(s.getsockname()[0])
    except OSError:  # no network at all
        pass
    return {n for n in names if n}


def allowed_hosts(setting: str, public_url: str | None, listen_host: str) -> list[str]:
    """The Host values to answer: the operator's list if given (plus the public URL's host), else the
    local names, the address the server listens on, this machine's names and addresses, and the public
    URL's host. '*' in the list accepts any Host (for a proxy that already checks it)."""
    public = [urlsplit(public_url).hostname] if public_url else []
    if setting.strip():
        return [h.strip() for h in setting.split(",") if h.strip()] + public
    listen = [] if listen_host in ANY_INTERFACE else [listen_host]
    return sorted({*LOCAL_NAMES, *listen, *machine_hosts(), *public})


class SecurityHeaders:
    """Pure ASGI middleware. Only /embed/ pages may be framed by other sites. Pages may frame their own
    origin and the public URL's (the Embed dialog previews the snippet readers will paste)."""

    def __init__(self, app, public_url: str | None = None):
        self.app, self.public = app, f" {public_url}" if public_url else ""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        ancestors = EMBED_ANCESTORS if scope["path"].startswith("/embed/") else "'self'"
        extra = [(b"content-security-policy", CSP.format(ancestors=ancestors, public=self.public).encode()),
                 (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
