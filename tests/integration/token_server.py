"""An OAuth 2.0 authorization server for the tests, on loopback, over
HTTPS with the test CA's certificate: the device authorization grant
(RFC 8628), the authorization code grant with PKCE (RFC 6749 §4.1,
RFC 7636), refresh (RFC 6749 §6) and token introspection (RFC 7662),
which Dovecot's oauth2 passdb asks to validate each access token.

    srv = TokenServer(cert, key).start()
    srv.url("/token") ...
    srv.approve(user_code, "alice")     # the user enters the code
    srv.revoke("alice")                 # refresh and access tokens die
    srv.count("refresh_token")          # token requests of that grant
    srv.stop()

Access tokens live `access_lifetime` seconds.  `rotate` makes every
refresh issue a new refresh token and retire the old one, as Microsoft
does.  The /authorize endpoint stands in for the provider's login page:
it logs in as `browser_user` and redirects straight back.

Python 3 standard library only.
"""

import base64
import hashlib
import http.server
import json
import secrets
import ssl
import threading
import time
import urllib.parse


class TokenServer:
    def __init__(self, certfile, keyfile, client_id="imapsnap-test",
                 client_secret=None, access_lifetime=3600, rotate=False):
        self.certfile, self.keyfile = certfile, keyfile
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_lifetime = access_lifetime
        self.rotate = rotate
        self.browser_user = None
        self.lock = threading.Lock()
        self.devices = {}     # device_code -> dict(user_code, user, until)
        self.codes = {}       # auth code -> dict(user, challenge, redirect)
        self.refresh = {}     # refresh token -> user
        self.access = {}      # access token -> (user, expires)
        self.counts = {}      # grant type or endpoint -> requests
        self.last_form = {}   # endpoint -> the last form posted
        self.httpd = None

    # --- control ------------------------------------------------------

    def start(self):
        handler = _handler(self)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.certfile, self.keyfile)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket,
                                            server_side=True)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever,
                         daemon=True).start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def url(self, path):
        return "https://127.0.0.1:%d%s" % (self.port, path)

    def approve(self, user_code, user):
        with self.lock:
            for d in self.devices.values():
                if d["user_code"] == user_code:
                    d["user"] = user
                    return
        raise KeyError(user_code)

    def deny(self, user_code):
        self.approve(user_code, False)

    def revoke(self, user):
        """Revoke every refresh and access token of `user`."""
        with self.lock:
            for t in [t for t, u in self.refresh.items() if u == user]:
                del self.refresh[t]
            for t in [t for t, v in self.access.items() if v[0] == user]:
                del self.access[t]

    def expire_access(self, user):
        """Access tokens of `user` expire now (the refresh token lives)."""
        with self.lock:
            for t, (u, _) in list(self.access.items()):
                if u == user:
                    self.access[t] = (u, time.time() - 1)

    def count(self, what):
        with self.lock:
            return self.counts.get(what, 0)

    def refresh_tokens(self, user):
        with self.lock:
            return [t for t, u in self.refresh.items() if u == user]

    # --- the protocol -------------------------------------------------

    def _count(self, what):
        self.counts[what] = self.counts.get(what, 0) + 1

    def _issue(self, user, scope):
        at = "at-" + secrets.token_urlsafe(24)
        rt = "rt-" + secrets.token_urlsafe(24)
        self.access[at] = (user, time.time() + self.access_lifetime)
        self.refresh[rt] = user
        return {"access_token": at, "token_type": "Bearer",
                "expires_in": self.access_lifetime, "refresh_token": rt,
                "scope": scope or ""}

    def _client_ok(self, form):
        if form.get("client_id") != self.client_id:
            return False
        if self.client_secret is not None:
            return form.get("client_secret") == self.client_secret
        return True

    def device(self, form):
        if not self._client_ok(form):
            return 401, {"error": "invalid_client"}
        dc = secrets.token_urlsafe(16)
        uc = "%04d-%04d" % (secrets.randbelow(10000),
                            secrets.randbelow(10000))
        self.devices[dc] = {"user_code": uc, "user": None,
                            "scope": form.get("scope"),
                            "until": time.time() + 60}
        return 200, {"device_code": dc, "user_code": uc,
                     "verification_uri": self.url("/device-page"),
                     "verification_uri_complete":
                         self.url("/device-page?code=" + uc),
                     "expires_in": 60, "interval": 1}

    def token(self, form):
        grant = form.get("grant_type", "")
        short = grant.rsplit(":", 1)[-1]
        self._count(short)
        if not self._client_ok(form):
            return 401, {"error": "invalid_client"}
        if short == "device_code":
            d = self.devices.get(form.get("device_code"))
            if d is None:
                return 400, {"error": "invalid_grant"}
            if time.time() > d["until"]:
                return 400, {"error": "expired_token"}
            if d["user"] is None:
                return 400, {"error": "authorization_pending"}
            del self.devices[form["device_code"]]
            if d["user"] is False:
                return 400, {"error": "access_denied"}
            return 200, self._issue(d["user"], d["scope"])
        if short == "authorization_code":
            c = self.codes.pop(form.get("code"), None)
            if c is None or c["redirect"] != form.get("redirect_uri"):
                return 400, {"error": "invalid_grant"}
            digest = hashlib.sha256(
                form.get("code_verifier", "").encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=")
            if challenge.decode() != c["challenge"]:
                return 400, {"error": "invalid_grant",
                             "error_description": "PKCE verifier"}
            return 200, self._issue(c["user"], c["scope"])
        if short == "refresh_token":
            rt = form.get("refresh_token")
            user = self.refresh.get(rt)
            if user is None:
                return 400, {"error": "invalid_grant",
                             "error_description":
                                 "Token has been expired or revoked."}
            reply = self._issue(user, None)
            if self.rotate:
                del self.refresh[rt]
            else:
                del self.refresh[reply.pop("refresh_token")]
            return 200, reply
        return 400, {"error": "unsupported_grant_type"}

    def introspect(self, form):
        self._count("introspect")
        v = self.access.get(form.get("token"))
        if v is None or v[1] < time.time():
            return 200, {"active": False}
        return 200, {"active": True, "username": v[0],
                     "exp": int(v[1]), "client_id": self.client_id}

    def authorize(self, query):
        """The provider's login page: straight back to the redirect."""
        q = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
        redirect = q.get("redirect_uri", "")
        if (q.get("client_id") != self.client_id or
                q.get("response_type") != "code" or
                q.get("code_challenge_method") != "S256" or
                not redirect.startswith("http://127.0.0.1:")):
            return 400, None
        params = {"state": q.get("state", "")}
        if self.browser_user:
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"user": self.browser_user,
                                "challenge": q.get("code_challenge"),
                                "redirect": redirect,
                                "scope": q.get("scope")}
            params["code"] = code
        else:
            params["error"] = "access_denied"
        return 302, redirect + "?" + urllib.parse.urlencode(params)


def _handler(srv):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in urllib.parse.parse_qs(
                self.rfile.read(n).decode(), keep_blank_values=True).items()}
            path = self.path.split("?")[0]
            with srv.lock:
                srv.last_form[path] = form
                if path == "/device":
                    status, body = srv.device(form)
                elif path == "/token":
                    status, body = srv.token(form)
                elif path == "/introspect":
                    status, body = srv.introspect(form)
                else:
                    status, body = 404, {"error": "not_found"}
            self._send(status, body)

        def do_GET(self):
            path, _, query = self.path.partition("?")
            if path != "/authorize":
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with srv.lock:
                srv._count("authorize")
                status, location = srv.authorize(query)
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler
