"""Helpers for the sandbox tests: the demo fixture's ids, valid bodies, an HTTP client."""

from __future__ import annotations

import copy
import json
from importlib.resources import files
from typing import Any

import requests

from tallyfy_sandbox import SandboxServer


class DEMO:
    """Ids from tallyfy_sandbox/demo_org.json."""

    ORG = "demo-org"
    TOKEN = "sandbox-token"
    REVIEW = "beeffbdddf558869a18556731b2da7c2"  # Weekly client review: 7 kick-off fields
    CLIENT_NAME = "16e27d901362e3abffae5c18ea1a8d12"  # text, required
    REVIEW_DUE = "2024ec22c6346de494cc419191bb01aa"  # date, required
    PRIORITY = "15b4e12ebb73d350509df79e2acd216c"  # dropdown Low/Normal/High (ids 1-3)
    CHANNEL = "81a2eb08591ad75d3419a48c4b7db1d6"  # radio Email/Call
    TOPICS = "992a8c970161f04f485f6ecc80469343"  # multiselect
    DELIVERABLES = "f2d9ba6a6377b8ca9a6e44aa8e83f3a0"  # table, 2 columns
    NOTES = "7ea3b144c7fe241675fca8c201763bae"  # textarea
    STEP_PREPARE = "2f09054af7c94eda191606832f6775b8"  # assignee 1002, +1 day
    STEP_MEET = "3c1b61a847f413f1c2e306633fa6580d"  # assignee 1002, +2 days
    STEP_REPORT = "75c35bde04c5e1f05223887f4920b0b7"  # assignee 1001, +3 days
    CLOSE = "705c13739dc06c6dda2accd933846ccc"  # Monthly close: one required text field
    PERIOD = "0078ef3fc605082e96cff58ab46c04bc"
    STEP_RECONCILE = "0c92ff0d0fe355bdb5418f984b470506"
    DRAFT = "7adcb8eadfd6642307dbc2e6eb26c81f"
    GROUP_AM = "8988c7c9a90225dbd141eab9d2422326"  # members [1002]
    GROUP_OPS = "aefc6eb5d9bf8e1007c4c63e74107328"  # members [1001, 1003]
    TAG_SCHEDULED = "f70ac12a815df7fa31f7cc57986f21c7"
    GUEST = "client@acme.example"
    ROLE_REVIEWER = "5a4b0c2d3e1f40718293a4b5c6d7e8f9"
    ROLE_CLIENT = "c0ffee00c0ffee00c0ffee00c0ffee00"
    FOLDER_RUNS = "9b1c3f7a5e2d4c6b8a0f1e3d5c7b9a2e"  # folder_type run: Client reviews
    FOLDER_TEMPLATES = "4e6a8c0b2d4f6a8c0e2b4d6f8a0c2e4b"  # folder_type checklist


def demo_fixture() -> dict[str, Any]:
    """A fresh copy of the bundled demo organization, to extend in a test."""
    text = files("tallyfy_sandbox").joinpath("demo_org.json").read_text()
    return dict(copy.deepcopy(json.loads(text)))


def review_body(**overrides: Any) -> dict[str, Any]:
    """A valid launch of the Weekly client review, with only the required kick-off values."""
    body: dict[str, Any] = {
        "checklist_id": DEMO.REVIEW,
        "name": "Weekly client review 23 Nov 2026",
        "prerun": {DEMO.CLIENT_NAME: "Acme", DEMO.REVIEW_DUE: "2026-11-30T17:00:00Z"},
    }
    body.update(overrides)
    return body


def task_body(**overrides: Any) -> dict[str, Any]:
    """A valid one-off task."""
    body: dict[str, Any] = {
        "title": "Follow up on approvals",
        "task_type": "task",
        "owners": {"users": [1001], "guests": [], "groups": []},
        "deadline": "2026-11-24T17:00:00Z",
    }
    body.update(overrides)
    return body


class Api:
    """A requests.Session speaking to one sandbox with the headers the client sends."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {server.token}",
                "Accept": "application/json",
                "X-Tallyfy-Client": "APIClient",
            }
        )
        self.org_url = f"{server.url}/organizations/{server.organization_id}"

    def get(self, path: str, **kw: Any) -> requests.Response:
        """GET a path under the organization (`runs`), or absolute under the prefix (`/me`)."""
        return self.session.get(self._url(path), timeout=10, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> requests.Response:
        return self.session.post(self._url(path), json=body, timeout=10, **kw)

    def launch(self, **overrides: Any) -> requests.Response:
        return self.post("runs", review_body(**overrides))

    def admin(self, method: str, name: str, body: Any = None) -> requests.Response:
        """An admin endpoint, called without any auth headers."""
        url = f"{self.server.base_url}/_sandbox/{name}"
        return requests.request(method, url, json=body, timeout=10)

    def _url(self, path: str) -> str:
        return self.server.url + path if path.startswith("/") else f"{self.org_url}/{path}"

    def close(self) -> None:
        self.session.close()


def assert_422(response: requests.Response, key: str, message: str) -> None:
    """A documented 422: error true, `message` is the first error, `errors[key]` holds it."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] is True
    assert message in body["errors"][key], body
    first_key = next(iter(body["errors"]))
    assert body["message"] == body["errors"][first_key][0]
