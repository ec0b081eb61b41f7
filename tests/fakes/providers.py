"""Fake HubSpot, Pipedrive and Google (OAuth + Sheets + Drive files.list) on one loopback aiohttp server.

Speaks the documented request and response shapes of each provider closely enough to
exercise Hookyard's real calls: authorization (auto-consent redirect), the token
endpoint (authorization_code and refresh_token grants, client credentials, PKCE), the
CRM / Sheets endpoints (401 for unknown or expired tokens), and 429 on demand. Every
request is recorded so tests can assert exactly what Hookyard sent.

    fake = FakeProviders(); await fake.start(); settings = Settings(**fake.settings())
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from aiohttp import web

DRIVE_SPREADSHEET = "application/vnd.google-apps.spreadsheet"
# Any of these lets files.list see the account's spreadsheets.
DRIVE_LISTING_SCOPES = frozenset({
    "https://www.googleapis.com/auth/drive.metadata.readonly", "https://www.googleapis.com/auth/drive.file",
    "https://www.googleapis.com/auth/drive.readonly", "https://www.googleapis.com/auth/drive",
    "https://www.googleapis.com/auth/drive.metadata",
})
# One clause of files.list's `q` as Hookyard writes them, with the " and " that may follow it.
DRIVE_CLAUSE = re.compile(r"(?:mimeType\s*=\s*'(?P<mime>[^']*)'|trashed\s*=\s*(?P<trashed>true|false)"
                          r"|name contains '(?P<name>(?:[^'\\]|\\.)*)')(?:\s+and\s+(?=\S)|\s*$)")
CLIENTS = {
    "hubspot": ("hs-client", "hs-secret"),
    "pipedrive": ("pd-client", "pd-secret"),
    "google": ("g-client.apps.googleusercontent.com", "g-secret"),
}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))

    @property
    def authorization(self) -> str | None:
        return self.headers.get("Authorization")


@dataclass
class Grant:
    provider: str
    redirect_uri: str
    code_challenge: str | None = None
    scope: str | None = None


@dataclass
class FakeProviders:
    expires_in: int = 1800
    requests: list[Recorded] = field(default_factory=list)
    codes: dict[str, Grant] = field(default_factory=dict)
    access_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (provider, expires_at)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # token -> provider
    # path -> list of (status, headers, body) answered before normal handling, first in first out
    queued: dict[str, list[tuple[int, dict[str, str], Any]]] = field(default_factory=dict)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # HubSpot, by email
    persons: dict[int, dict[str, Any]] = field(default_factory=dict)
    deals: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: dict[int, dict[str, Any]] = field(default_factory=dict)
    sheets: dict[str, list[list[Any]]] = field(default_factory=dict)  # spreadsheet id -> rows
    # Google Drive files (Drive v3 File resources: id, name, mimeType, modifiedTime, webViewLink, trashed)
    drive_files: list[dict[str, Any]] = field(default_factory=list)
    # access and refresh token -> the scopes granted on the consent screen (tokens a test issued itself: all)
    granted: dict[str, str] = field(default_factory=dict)
    base_url: str = ""
    _ids: itertools.count = field(default_factory=lambda: itertools.count(101))
    _runner: web.AppRunner | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        self._runner = web.AppRunner(self._app())
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def settings(self) -> dict[str, Any]:
        """Keyword arguments for app.config.Settings pointing every provider here."""
        b = self.base_url
        return {
            "allowed_networks": "127.0.0.0/8",
            "hubspot_client_id": CLIENTS["hubspot"][0],
            "hubspot_client_secret": CLIENTS["hubspot"][1],
            "hubspot_auth_url": f"{b}/hubspot/oauth/authorize",
            "hubspot_api_url": f"{b}/hubspot",
            "pipedrive_client_id": CLIENTS["pipedrive"][0],
            "pipedrive_client_secret": CLIENTS["pipedrive"][1],
            "pipedrive_auth_url": f"{b}/pipedrive/oauth/authorize",
            "pipedrive_token_url": f"{b}/pipedrive/oauth/token",
            "pipedrive_api_url": f"{b}/pipedrive",
            "google_client_id": CLIENTS["google"][0],
            "google_client_secret": CLIENTS["google"][1],
            "google_auth_url": f"{b}/google/o/oauth2/v2/auth",
            "google_token_url": f"{b}/google/token",
            "google_sheets_api_url": f"{b}/sheets",
            "google_drive_api_url": f"{b}/drive",
        }

    # ------------------------------------------------------------ test controls

    def issue_code(self, provider: str, redirect_uri: str, code_challenge: str | None = None,
                   scope: str | None = None) -> str:
        """What the provider does after the user consents."""
        code = "code-" + secrets.token_urlsafe(12)
        self.codes[code] = Grant(provider, redirect_uri, code_challenge, scope)
        return code

    def add_spreadsheet(self, sid: str, name: str, modified: str = "2026-01-01T00:00:00.000Z",
                        trashed: bool = False) -> dict[str, Any]:
        """A spreadsheet in the fake Google account: listed by Drive, and rows can be appended to it."""
        self.sheets.setdefault(sid, [])
        item = {"id": sid, "name": name, "mimeType": DRIVE_SPREADSHEET, "modifiedTime": modified,
                "webViewLink": f"https://docs.google.com/spreadsheets/d/{sid}/edit?usp=drivesdk", "trashed": trashed}
        self.drive_files.append(item)
        return item

    def issue_tokens(self, provider: str, expires_in: int | None = None) -> dict[str, Any]:
        access, refresh = f"{provider}-at-" + secrets.token_urlsafe(12), f"{provider}-rt-" + secrets.token_urlsafe(12)
        lifetime = self.expires_in if expires_in is None else expires_in
        self.access_tokens[access] = (provider, time.time() + lifetime)
        self.refresh_tokens[refresh] = provider
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_at": time.time() + lifetime,
            "expires_in": lifetime,
        }

    def expire(self, access_token: str) -> None:
        provider, _ = self.access_tokens[access_token]
        self.access_tokens[access_token] = (provider, time.time() - 1)

    def revoke_refresh(self, refresh_token: str) -> None:
        self.refresh_tokens.pop(refresh_token, None)

    def answer_next(self, path: str, status: int, headers: dict[str, str] | None = None, body: Any = None) -> None:
        """Make the next request to `path` get this answer (e.g. 429 with Retry-After)."""
        self.queued.setdefault(path, []).append((status, headers or {}, body))

    def calls(self, path_prefix: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    # ------------------------------------------------------------ app

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/hubspot/oauth/authorize", self._authorize("hubspot"))
        app.router.add_get("/pipedrive/oauth/authorize", self._authorize("pipedrive"))
        app.router.add_get("/google/o/oauth2/v2/auth", self._authorize("google"))
        app.router.add_post("/hubspot/oauth/v1/token", self._hubspot_token)
        app.router.add_post("/pipedrive/oauth/token", self._pipedrive_token)
        app.router.add_post("/google/token", self._google_token)
        app.router.add_post("/hubspot/crm/v3/objects/contacts/batch/upsert", self._hubspot_upsert)
        app.router.add_get("/pipedrive/api/v2/persons/search", self._pipedrive_search)
        app.router.add_post("/pipedrive/api/v2/persons", self._pipedrive_person)
        app.router.add_post("/pipedrive/api/v2/deals", self._pipedrive_deal)
        app.router.add_post("/pipedrive/v1/notes", self._pipedrive_note)
        app.router.add_post("/sheets/v4/spreadsheets/{sid}/values/{target}", self._sheets_append)
        app.router.add_get("/drive/drive/v3/files", self._drive_files)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path, dict(request.query), dict(request.headers), body))
        queue = self.queued.get(request.path)
        if queue:
            status, headers, payload = queue.pop(0)
            return _json(payload if payload is not None else {}, status, headers)
        return await handler(request)

    # ------------------------------------------------------------ OAuth

    def _authorize(self, provider: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            q = request.query
            if q.get("client_id") != CLIENTS[provider][0] or q.get("response_type") != "code":
                return _json({"error": "invalid_client"}, 400)
            code = self.issue_code(provider, q["redirect_uri"], q.get("code_challenge"), q.get("scope"))
            raise web.HTTPFound(q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")}))

        return handler

    def _check_grant(self, provider: str, form: dict[str, str]) -> tuple[dict[str, Any] | None, str | None]:
        """(token response, None) or (None, error code)."""
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = self.codes.pop(form.get("code", ""), None)
            if grant is None or grant.provider != provider or grant.redirect_uri != form.get("redirect_uri"):
                return None, "invalid_grant"
            if grant.code_challenge and _challenge(form.get("code_verifier", "")) != grant.code_challenge:
                return None, "invalid_grant"
            tokens = self.issue_tokens(provider)
            if grant.scope is not None:
                self.granted[tokens["access_token"]] = self.granted[tokens["refresh_token"]] = grant.scope
            return tokens, None
        if grant_type == "refresh_token":
            if self.refresh_tokens.get(form.get("refresh_token", "")) != provider:
                return None, "invalid_grant"
            tokens = self.issue_tokens(provider)
            self.refresh_tokens.pop(tokens["refresh_token"])
            if form["refresh_token"] in self.granted:
                self.granted[tokens["access_token"]] = self.granted[form["refresh_token"]]
            tokens["refresh_token"] = form["refresh_token"]  # providers keep the refresh token valid
            return tokens, None
        return None, "unsupported_grant_type"

    def _form_client_ok(self, provider: str, form: dict[str, str]) -> bool:
        return (form.get("client_id"), form.get("client_secret")) == CLIENTS[provider]

    async def _hubspot_token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        if not self._form_client_ok("hubspot", form):
            return _json({"status": "BAD_CLIENT_ID", "message": "missing or invalid client id"}, 400)
        tokens, error = self._check_grant("hubspot", form)
        if error:
            status = "BAD_REFRESH_TOKEN" if form.get("grant_type") == "refresh_token" else "BAD_AUTH_CODE"
            return _json(
                {"status": status, "message": "missing or unknown token", "correlationId": secrets.token_hex(8)}, 400
            )
        return _json(
            {
                "token_type": "bearer",
                "access_token": tokens["access_token"],
                "refresh_token": tokens["refresh_token"],
                "expires_in": tokens["expires_in"],
            }
        )

    async def _pipedrive_token(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(":".join(CLIENTS["pipedrive"]).encode()).decode()
        if request.headers.get("Authorization") != expected:
            return _json({"success": False, "error": "invalid_client", "message": "Invalid client"}, 401)
        form = dict(await request.post())
        tokens, error = self._check_grant("pipedrive", form)
        if error:
            return _json({"success": False, "error": error, "message": "Invalid grant: token is invalid"}, 400)
        return _json(
            {
                "access_token": tokens["access_token"],
                "token_type": "Bearer",
                "refresh_token": tokens["refresh_token"],
                "scope": "base,deals:full,contacts:full",
                "expires_in": tokens["expires_in"],
                "api_domain": f"{self.base_url}/pipedrive",
            }
        )

    async def _google_token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        if not self._form_client_ok("google", form):
            return _json({"error": "invalid_client", "error_description": "The OAuth client was not found."}, 401)
        tokens, error = self._check_grant("google", form)
        if error:
            return _json({"error": error, "error_description": "Token has been expired or revoked."}, 400)
        body = {
            "access_token": tokens["access_token"],
            "expires_in": tokens["expires_in"],
            "scope": "https://www.googleapis.com/auth/spreadsheets",
            "token_type": "Bearer",
        }
        if form["grant_type"] == "authorization_code":  # Google omits it on refresh
            body["refresh_token"] = tokens["refresh_token"]
        return _json(body)

    def _bearer_ok(self, provider: str, request: web.Request) -> bool:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        owner, expires_at = self.access_tokens.get(token, (None, 0.0))
        return owner == provider and expires_at > time.time()

    # ------------------------------------------------------------ HubSpot

    async def _hubspot_upsert(self, request: web.Request) -> web.Response:
        if not self._bearer_ok("hubspot", request):
            return _json(
                {
                    "status": "error",
                    "message": "Authentication credentials not found.",
                    "category": "INVALID_AUTHENTICATION",
                },
                401,
            )
        data = await request.json()
        inputs = data.get("inputs") if isinstance(data, dict) else None
        if not inputs or any(i.get("idProperty") != "email" or not i.get("id") for i in inputs):
            return _json({"status": "error", "message": "Invalid input JSON", "category": "VALIDATION_ERROR"}, 400)
        results = [self._upsert_contact(i["id"], i.get("properties") or {}) for i in inputs]
        return _json(
            {
                "status": "COMPLETE",
                "results": results,
                "startedAt": "2026-01-01T00:00:00Z",
                "completedAt": "2026-01-01T00:00:01Z",
            }
        )

    def _upsert_contact(self, email: str, properties: dict[str, Any]) -> dict[str, Any]:
        new = email not in self.contacts
        contact = self.contacts.setdefault(email, {"id": str(next(self._ids)), "properties": {"email": email}})
        contact["properties"].update(properties)
        return {"id": contact["id"], "properties": contact["properties"], "new": new}

    # ------------------------------------------------------------ Pipedrive

    def _pipedrive_unauthorized(self) -> web.Response:
        return _json(
            {
                "success": False,
                "error": "unauthorized access",
                "errorCode": 401,
                "error_info": "Please check developers.pipedrive.com",
            },
            401,
        )

    async def _pipedrive_search(self, request: web.Request) -> web.Response:
        if not self._bearer_ok("pipedrive", request):
            return self._pipedrive_unauthorized()
        term = request.query.get("term", "")
        items = [
            {"result_score": 1.0, "item": {"id": pid, "type": "person", "name": p["name"]}}
            for pid, p in self.persons.items()
            if any(e.get("value") == term for e in p.get("emails", []))
        ]
        return _json({"success": True, "data": {"items": items}, "additional_data": {"next_cursor": None}})

    async def _pipedrive_person(self, request: web.Request) -> web.Response:
        if not self._bearer_ok("pipedrive", request):
            return self._pipedrive_unauthorized()
        data = await request.json()
        if not data.get("name"):
            return _json({"success": False, "error": "Name must be given", "code": "ERR_SCHEMA_VALIDATION_FAILED"}, 400)
        pid = next(self._ids)
        self.persons[pid] = {"id": pid, **data}
        return _json({"success": True, "data": self.persons[pid]})

    async def _pipedrive_deal(self, request: web.Request) -> web.Response:
        if not self._bearer_ok("pipedrive", request):
            return self._pipedrive_unauthorized()
        data = await request.json()
        if not data.get("title") or data.get("person_id") not in self.persons:
            return _json({"success": False, "error": "title and a known person_id are required"}, 400)
        did = next(self._ids)
        self.deals[did] = {"id": did, **data}
        return _json({"success": True, "data": self.deals[did]})

    async def _pipedrive_note(self, request: web.Request) -> web.Response:
        if not self._bearer_ok("pipedrive", request):
            return self._pipedrive_unauthorized()
        data = await request.json()
        if not data.get("content") or data.get("person_id") not in self.persons:
            return _json({"success": False, "error": "content and a known person_id are required"}, 400)
        nid = next(self._ids)
        self.notes[nid] = {"id": nid, **data}
        return _json({"success": True, "data": self.notes[nid]})

    # ------------------------------------------------------------ Google Sheets

    async def _sheets_append(self, request: web.Request) -> web.Response:
        target = request.match_info["target"]
        if not target.endswith(":append"):
            return _json(_google_error(404, "Not found", "NOT_FOUND"), 404)
        if not self._bearer_ok("google", request):
            return _json(_google_error(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED"), 401)
        sid = request.match_info["sid"]
        if sid not in self.sheets:
            return _json(_google_error(404, "Requested entity was not found.", "NOT_FOUND"), 404)
        values = (await request.json()).get("values")
        if not isinstance(values, list) or not all(isinstance(r, list) for r in values):
            return _json(_google_error(400, "Invalid values", "INVALID_ARGUMENT"), 400)
        self.sheets[sid].extend(values)
        rng = target.removesuffix(":append")
        return _json(
            {
                "spreadsheetId": sid,
                "tableRange": rng,
                "updates": {"spreadsheetId": sid, "updatedRange": rng, "updatedRows": len(values)},
            }
        )


    # ------------------------------------------------------------ Google Drive

    async def _drive_files(self, request: web.Request) -> web.Response:
        """files.list: `q` as Hookyard writes it (mimeType, trashed, name contains), newest first, paged."""
        if not self._bearer_ok("google", request):
            return _json(_google_error(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED"), 401)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        scopes = self.granted.get(token)
        if scopes is not None and not DRIVE_LISTING_SCOPES & set(scopes.split()):
            error = _google_error(403, "Request had insufficient authentication scopes.", "PERMISSION_DENIED")
            error["error"]["errors"] = [{"message": "Insufficient Permission", "domain": "global",
                                         "reason": "insufficientPermissions"}]
            return _json(error, 403)
        q = request.query.get("q", "")
        wanted_mime, trashed, contains = None, None, None
        rest = q.strip()
        while rest:
            m = DRIVE_CLAUSE.match(rest)
            if m is None:
                return _json(_google_error(400, f"Invalid Value: q ({rest})", "INVALID_ARGUMENT"), 400)
            if m.group("mime") is not None:
                wanted_mime = m.group("mime")
            elif m.group("trashed") is not None:
                trashed = m.group("trashed") == "true"
            else:
                contains = re.sub(r"\\(.)", r"\1", m.group("name"))
            rest = rest[m.end():]
        files = [f for f in self.drive_files
                 if (wanted_mime is None or f["mimeType"] == wanted_mime)
                 and (trashed is None or f["trashed"] == trashed)
                 and (contains is None or contains.lower() in f["name"].lower())]
        if request.query.get("orderBy") == "modifiedTime desc":
            files.sort(key=lambda f: f["modifiedTime"], reverse=True)
        size = max(1, min(int(request.query.get("pageSize", "100")), 1000))
        start = int(request.query.get("pageToken") or 0)
        page = files[start:start + size]
        body: dict[str, Any] = {"files": [{k: f[k] for k in ("id", "name", "mimeType", "modifiedTime", "webViewLink")}
                                          for f in page]}
        if start + size < len(files):
            body["nextPageToken"] = str(start + size)
        return _json(body)


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _google_error(code: int, message: str, status: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json", headers=headers or {})
