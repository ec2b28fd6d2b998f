"""Security headers on every response. The CSP forbids inline scripts: data reaches pages as
<script type="application/json">, code only as files from this origin."""

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors {ancestors}")


class SecurityHeaders:
    """Pure ASGI middleware. Only /embed/ pages may be framed by other sites."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        ancestors = "*" if scope["path"].startswith("/embed/") else "'self'"
        extra = [(b"content-security-policy", CSP.format(ancestors=ancestors).encode()),
                 (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
