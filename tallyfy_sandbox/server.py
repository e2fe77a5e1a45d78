"""The sandbox's HTTP server: the routes and request pipeline, and `SandboxServer` around them.

The wire (HTTP/1.1 keep-alive on raw sockets, one thread per connection, and the limits on
sizes, time and connections) is transport.py; a `latency` fault delays only its own request.

Request pipeline (`SandboxApp.handle`):
1. count the request (`/_sandbox/stats`); admin routes (`/_sandbox/...`) are answered here,
   for loopback peers only, and are never faulted, limited or authenticated;
2. "before" faults: `latency` sleeps, then `rate_limit` / `error_before` answer without applying;
3. route -> 404 ENDPOINT_NOT_FOUND or 405; authentication -> 401 (406 for Accept, strict);
4. the sliding-window rate limit (per token) -> 429, not applied;
5. the handler: 2xx, 404 RESOURCE_NOT_FOUND, 422 with field errors, 400 for a body that is not
   JSON or nests deeper than 64 levels (a 100,000-deep `[[[...` must not reach a recursion);
6. on 2xx only, "after" faults: `delay_after` sleeps, `error_after` replaces the answer,
   `drop_after` closes the connection with no answer. The work is done either way.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

from tallyfy_sandbox.clock import Clock, SystemClock
from tallyfy_sandbox.errors import InvalidInput, ResourceNotFound, problem
from tallyfy_sandbox.faults import (
    AFTER_KINDS,
    BEFORE_KINDS,
    FaultBook,
    FaultRule,
    SlidingWindowLimit,
)
from tallyfy_sandbox.state import SandboxState, load_fixture
from tallyfy_sandbox.transport import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    HttpServer,
    Limits,
    Request,
    Response,
    error_response,
)
from tallyfy_sandbox.validation import field_errors

DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 100
USERS_PER_PAGE = 9999  # users and guests lists default to (almost) everything (section 6)
GUESTS_PER_PAGE = 999
# Deeper JSON is refused before anything walks it recursively (validation, deepcopy, dumps).
MAX_JSON_DEPTH = 64

UNAUTHENTICATED = {"error": True, "message": "Unauthenticated."}
ENDPOINT_NOT_FOUND = {
    "error": True,
    "message": "API endpoint not found",
    "code": "ENDPOINT_NOT_FOUND",
}
RESOURCE_NOT_FOUND = {"error": True, "message": "Resource not found", "code": "RESOURCE_NOT_FOUND"}


def _unprocessable(exc: InvalidInput) -> Response:
    errors = field_errors(exc)
    first = exc.problems[0].message if exc.problems else "The given data was invalid."
    return Response(422, {"error": True, "message": first, "errors": errors})


class _BadJson(Exception):
    pass


def _json_body(request: Request) -> Any:
    if not request.body.strip():
        return {}
    try:
        value = json.loads(request.body)
    except RecursionError:  # the C decoder counts its depth against the recursion limit
        raise _BadJson(f"nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:
        raise _BadJson(str(exc)) from exc
    if _nested_deeper_than(value, MAX_JSON_DEPTH):
        raise _BadJson(f"nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays/objects nest more than `limit` levels; iterative, so any depth is safe."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class _Stats:
    """Requests seen, by (method, path)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        # Accepted launch and one-off task bodies, so a test can compare what a client sent
        # (every key, as sent) with the shape the documentation shows.
        self._bodies: list[tuple[str, Any]] = []

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self._counts[(method, path)] += 1

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        with self._lock:
            return sum(
                n
                for (m, p), n in self._counts.items()
                if (method is None or m == method.upper())
                and (path_contains is None or path_contains in p)
            )

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
            self._bodies.clear()

    def record_body(self, kind: str, body: Any) -> None:
        """The JSON body of a create that was accepted (`runs` or `tasks`), as it arrived."""
        with self._lock:
            self._bodies.append((kind, copy.deepcopy(body)))

    def bodies(self, kind: str) -> list[Any]:
        with self._lock:
            return [copy.deepcopy(body) for k, body in self._bodies if k == kind]

    def summary(self) -> dict[str, Any]:
        with self._lock:
            by_method: Counter[str] = Counter()
            for (m, _p), n in self._counts.items():
                by_method[m] += n
            return {
                "total": sum(self._counts.values()),
                "by_method": dict(by_method),
                "by_path": [
                    {"method": m, "path": p, "count": n} for (m, p), n in self._counts.items()
                ],
            }


Handler = Callable[[Request, list[str]], Response]


class SandboxApp:
    """The request pipeline and routes, independent of sockets (see the module docstring)."""

    def __init__(
        self,
        state: SandboxState,
        *,
        prefix: str,
        strict: bool,
        missing_client_status: int,
    ) -> None:
        self.state = state
        self.prefix = prefix.rstrip("/")
        self.strict = strict
        self.missing_client_status = missing_client_status
        self.faults = FaultBook()
        self.limit = SlidingWindowLimit()
        self.stats = _Stats()
        self.sleep: Callable[[float], None] = time.sleep
        # The transport's connection counts, for /_sandbox/stats (set when a socket is bound).
        self.connection_stats: Callable[[], dict[str, int]] = dict
        org = ("organizations", "{}")
        # (segments, method) -> handler; "{}" matches one path segment.
        self.routes: list[tuple[tuple[str, ...], str, Handler]] = [
            (("me",), "GET", self._me),
            (("me", "organizations"), "GET", self._my_orgs),
            ((*org, "runs"), "GET", self._list_runs),
            ((*org, "runs"), "POST", self._launch),
            ((*org, "runs", "{}"), "GET", self._get_run),
            ((*org, "runs", "{}", "tasks"), "GET", self._run_tasks),
            ((*org, "tasks"), "GET", self._list_tasks),
            ((*org, "tasks"), "POST", self._create_task),
            ((*org, "tasks", "{}"), "GET", self._get_task),
            ((*org, "checklists"), "GET", self._list_checklists),
            ((*org, "checklists", "{}"), "GET", self._get_checklist),
            ((*org, "checklists", "{}", "steps"), "GET", self._checklist_steps),
            ((*org, "users"), "GET", self._simple_list(self.state.list_users, USERS_PER_PAGE)),
            ((*org, "guests"), "GET", self._simple_list(self.state.list_guests, GUESTS_PER_PAGE)),
            ((*org, "guests", "{}"), "GET", self._get_guest),
            ((*org, "groups"), "GET", self._simple_list(self.state.list_groups, DEFAULT_PER_PAGE)),
            ((*org, "tags"), "GET", self._simple_list(self.state.list_tags, DEFAULT_PER_PAGE)),
            ((*org, "folders"), "GET", self._list_folders),
        ]
        self.admin_routes: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("GET", "faults"): lambda r: Response(200, {"data": self.faults.rules()}),
            ("POST", "faults"): self._admin_add_faults,
            ("DELETE", "faults"): self._admin_clear_faults,
            ("GET", "runs"): lambda r: Response(200, {"data": self.state.snapshot()[0]}),
            ("GET", "tasks"): lambda r: Response(200, {"data": self.state.snapshot()[1]}),
            ("POST", "reset"): self._admin_reset,
            ("POST", "tokens"): self._admin_tokens,
            ("POST", "rate-limit"): self._admin_rate_limit,
            ("POST", "run-status"): self._admin_run_status,
            ("POST", "task-status"): self._admin_task_status,
            ("GET", "stats"): self._admin_stats,
            ("GET", "bodies/runs"): lambda r: Response(200, {"data": self.stats.bodies("runs")}),
            ("GET", "bodies/tasks"): lambda r: Response(200, {"data": self.stats.bodies("tasks")}),
        }

    # --- pipeline -----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request (steps in the module docstring)."""
        self.stats.record(request.method, request.path)
        if request.path == "/_sandbox" or request.path.startswith("/_sandbox/"):
            return self._admin(request)

        before = self.faults.take(BEFORE_KINDS, request.method, request.target)
        for rule in before:
            if rule.kind == "latency":
                self.sleep(rule.seconds)
            else:
                return self._fault_answer(rule)

        response = self._dispatch(request)

        if 200 <= response.status < 300:
            for rule in self.faults.take(AFTER_KINDS, request.method, request.target):
                if rule.kind == "delay_after":
                    self.sleep(rule.seconds)
                elif rule.kind == "drop_after":
                    return Response(0, drop=True)
                else:
                    return error_response(
                        rule.status, rule.message or "Injected server error (applied)"
                    )
        return response

    def _fault_answer(self, rule: FaultRule) -> Response:
        if rule.kind == "rate_limit":
            headers = [("X-RateLimit-Remaining", "0")]
            if rule.retry_after is not None:
                headers.append(("Retry-After", str(rule.retry_after)))
            message = rule.message or "Too many requests. Please slow down."
            return Response(429, {"message": message, "code": "RATE_LIMIT_EXCEEDED"}, headers)
        return error_response(rule.status, rule.message or "Injected server error (not applied)")

    def _route(self, request: Request) -> tuple[Handler, list[str]] | Response:
        path = request.path
        if self.prefix:
            if path != self.prefix and not path.startswith(self.prefix + "/"):
                return Response(404, ENDPOINT_NOT_FOUND)
            path = path[len(self.prefix) :]
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        allowed = False
        for pattern, method, handler in self.routes:
            if len(pattern) != len(parts):
                continue
            params = []
            for want, got in zip(pattern, parts, strict=True):
                if want == "{}":
                    params.append(got)
                elif want != got:
                    break
            else:
                if method == request.method:
                    return handler, params
                allowed = True
        if allowed:
            return error_response(405, "Method not allowed")
        return Response(404, ENDPOINT_NOT_FOUND)

    def _authenticate(self, request: Request) -> Response | str:
        """The caller's token, or the refusal (section 9 items 1-2)."""
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or not self.state.token_valid(token):
            return Response(401, UNAUTHENTICATED)
        client = request.headers.get("x-tallyfy-client")
        if not client or (self.strict and client != "APIClient"):
            if self.missing_client_status == 404:
                return Response(404, ENDPOINT_NOT_FOUND)
            return Response(401, {**UNAUTHENTICATED, "reason": "X-Tallyfy-Client header missing"})
        if self.strict and "application/json" not in request.headers.get("accept", ""):
            return error_response(406, "Send Accept: application/json", code="NOT_ACCEPTABLE")
        return token

    def _dispatch(self, request: Request) -> Response:
        routed = self._route(request)
        if isinstance(routed, Response):
            return routed
        handler, params = routed
        token = self._authenticate(request)
        if isinstance(token, Response):
            return token
        limit_headers: list[tuple[str, str]] = []
        if self.limit.per_minute is not None:  # skip the clock read when there is no limit
            allowed, remaining, retry_after = self.limit.hit(token, self.state.clock.monotonic())
            limit_headers = [
                ("X-RateLimit-Limit", str(self.limit.per_minute)),
                ("X-RateLimit-Remaining", str(remaining)),
            ]
            if not allowed:
                return self._limited(limit_headers, retry_after)
        try:
            response = handler(request, params)
        except ResourceNotFound:
            response = Response(404, RESOURCE_NOT_FOUND)
        except InvalidInput as exc:
            response = _unprocessable(exc)
        except _BadJson as exc:
            response = error_response(400, f"The request body is not valid JSON: {exc}")
        response.headers.extend(limit_headers)
        return response

    def _limited(self, headers: list[tuple[str, str]], retry_after: int) -> Response:
        body = {
            "message": f"Too many requests: {self.limit.per_minute} per minute.",
            "code": "RATE_LIMIT_EXCEEDED",
        }
        return Response(429, body, [*headers, ("Retry-After", str(retry_after))])

    # --- paging -------------------------------------------------------------------------

    def _page(
        self, request: Request, items: list[Any], default_per_page: int = DEFAULT_PER_PAGE
    ) -> Response:
        """`{"data": [...], "meta": {"pagination": {...six keys...}}}` (section 9 item 7)."""
        cap = max(MAX_PER_PAGE, default_per_page)
        page = _positive_int(request.query, "page", 1)
        per_page = min(_positive_int(request.query, "per_page", default_per_page), cap)
        total = len(items)
        total_pages = max(1, -(-total // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links: dict[str, str] = {}
        if page > 1:
            links["previous"] = self._page_url(request, min(page - 1, total_pages))
        if page < total_pages:
            links["next"] = self._page_url(request, page + 1)
        pagination: dict[str, Any] = {
            "total": total,
            "count": len(chunk),
            "per_page": per_page,
            "current_page": page,
            "total_pages": total_pages,
            # PHP serializes an empty links map as [] (section 6); clients must cope with both.
            "links": links or [],
        }
        return Response(200, {"data": chunk, "meta": {"pagination": pagination}})

    def _page_url(self, request: Request, page: int) -> str:
        query = {**request.query, "page": str(page)}
        host = request.host_header or "127.0.0.1"
        return f"http://{host}{quote(request.path)}?{urlencode(query)}"

    # --- API routes ---------------------------------------------------------------------

    def _org(self, params: list[str]) -> None:
        self.state.check_org(params[0])

    def _me(self, request: Request, params: list[str]) -> Response:
        return Response(200, {"data": self.state.me})

    def _my_orgs(self, request: Request, params: list[str]) -> Response:
        return self._page(request, [self.state.organization])

    def _list_runs(self, request: Request, params: list[str]) -> Response:
        self._org(params)
        q = request.query
        sort = q.get("sort", q.get("sort_by", "-created_at"))
        if sort not in ("created_at", "-created_at"):
            raise InvalidInput(problem("The selected sort is invalid.", key="sort"))
        runs = self.state.list_runs(
            q=q.get("q"),
            status=q.get("status"),
            checklist_id=q.get("checklist_id", q.get("blueprint_id")),
            tag=q.get("tag"),
            descending=sort.startswith("-"),
        )
        return self._page(request, runs)

    def _launch(self, request: Request, params: list[str]) -> Response:
        self._org(params)
        body = _json_body(request)
        run = self.state.launch(body, self.strict)
        self.stats.record_body("runs", body)
        return Response(201, {"data": run})

    def _get_run(self, request: Request, params: list[str]) -> Response:
        self._org(params)
        run = self.state.run(params[1])
        includes = _with(request)
        if not includes:
            return Response(200, {"data": run})
        data = dict(run)
        if "tasks" in includes:
            data["tasks"] = {"data": self.state.tasks_of(run["id"])}
        if "tags" in includes:
            data["tags"] = {"data": self.state.tags_of(run["id"])}
        if "checklist" in includes and run["checklist_id"] in self.state.checklists:
            checklist = self.state.checklists[run["checklist_id"]]
            data["checklist"] = {"data": self.state.checklist_view(checklist, with_steps=False)}
        return Response(200, {"data": data})

    def _run_tasks(self, request: Request, params: list[str]) -> Response:
        self._org(params)
        return self._page(request, self.state.tasks_of(params[1]))

    def _list_tasks(self, request: Request, params: list[str]) -> Response:
        self._org(params)
        q = request.query
        oneoff_text = q.get("is_oneoff")
        is_oneoff = None if oneoff_text is None else oneoff_text.lower() in ("true", "1", "yes")
        tasks = self.state.list_tasks(q=q.get("q"), status=q.get("status"), is_oneoff=is_oneoff)
        return self._page(request, tasks)

    def _create_task(self, request: Request, params: list[str]) -> Response:
        self._org(params)
        body = _json_body(request)
        task = self.state.create_task(body, self.strict)
        self.stats.record_body("tasks", body)
        response = Response(201, {"data": task})
        if isinstance(body, dict) and "description" in body and "summary" not in body:
            response.headers.append(("X-Sandbox-Warning", "'description' read as 'summary'"))
        return response

    def _get_task(self, request: Request, params: list[str]) -> Response:
        self._org(params)
        return Response(200, {"data": self.state.task(params[1])})

    def _list_checklists(self, request: Request, params: list[str]) -> Response:
        self._org(params)
        q = request.query
        return self._page(request, self.state.list_checklists(q.get("q"), q.get("status")))

    def _get_checklist(self, request: Request, params: list[str]) -> Response:
        self._org(params)
        checklist = self.state.checklist(params[1])
        view = self.state.checklist_view(checklist, with_steps="steps" in _with(request))
        return Response(200, {"data": view})

    def _checklist_steps(self, request: Request, params: list[str]) -> Response:
        self._org(params)
        checklist = self.state.checklist(params[1])
        return Response(200, {"data": list(checklist.get("steps") or [])})

    def _simple_list(self, lister: Callable[[str | None], list[Any]], per_page: int) -> Handler:
        def handler(request: Request, params: list[str]) -> Response:
            self._org(params)
            return self._page(request, lister(request.query.get("q")), per_page)

        return handler

    def _get_guest(self, request: Request, params: list[str]) -> Response:
        self._org(params)
        return Response(200, {"data": self.state.guest(params[1])})

    def _list_folders(self, request: Request, params: list[str]) -> Response:
        self._org(params)
        return self._page(request, self.state.list_folders(request.query.get("folder_type")))

    # --- admin routes -------------------------------------------------------------------

    def _admin(self, request: Request) -> Response:
        if not _is_loopback(request.client_host):
            return error_response(403, "The sandbox admin endpoints answer loopback clients only.")
        name = request.path[len("/_sandbox/") :].strip("/")
        handler = self.admin_routes.get((request.method, name))
        if handler is None:
            return Response(404, ENDPOINT_NOT_FOUND)
        try:
            return handler(request)
        except InvalidInput as exc:
            return _unprocessable(exc)
        except _BadJson as exc:
            return error_response(400, f"The request body is not valid JSON: {exc}")

    def _admin_add_faults(self, request: Request) -> Response:
        body = _json_body(request)
        items = body if isinstance(body, list) else [body]
        rules = []
        problems = []
        for i, item in enumerate(items):
            try:
                rules.append(FaultRule.from_dict(item))
            except InvalidInput as exc:
                problems += exc.located(key=str(i)).problems
        if problems:
            raise InvalidInput(problems)
        for rule in rules:
            self.faults.add(rule)
        return Response(201, {"data": [r.to_dict() for r in rules]})

    def _admin_clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        return Response(200, {"data": []})

    def _admin_reset(self, request: Request) -> Response:
        self.reset()
        return Response(200, {"data": {"reset": True}})

    def _admin_tokens(self, request: Request) -> Response:
        body = _json_body(request)
        if not isinstance(body, dict) or set(body) - {"add", "expire"}:
            raise InvalidInput(problem('expected {"add": [...], "expire": [...]}', key="body"))
        lists = {k: body.get(k) or [] for k in ("add", "expire")}
        for key, value in lists.items():
            if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
                raise InvalidInput(problem("must be a list of tokens", key=key))
        for token in lists["add"]:
            self.state.add_token(token)
        for token in lists["expire"]:
            self.state.expire_token(token)
        return Response(
            200, {"data": {"added": len(lists["add"]), "expired": len(lists["expire"])}}
        )

    def _admin_rate_limit(self, request: Request) -> Response:
        body = _json_body(request)
        if not isinstance(body, dict) or "per_minute" not in body:
            raise InvalidInput(problem('expected {"per_minute": n | null}', key="per_minute"))
        self.limit.set(body["per_minute"])
        return Response(200, {"data": {"per_minute": self.limit.per_minute}})

    def _admin_run_status(self, request: Request) -> Response:
        body = _json_body(request)
        if not isinstance(body, dict) or set(body) != {"run_id", "status"}:
            raise InvalidInput(problem('expected {"run_id": "...", "status": "..."}', key="body"))
        try:
            run = self.state.set_run_status(str(body["run_id"]), str(body["status"]))
        except ResourceNotFound:
            raise InvalidInput(problem("no such run", key="run_id", value=body["run_id"])) from None
        return Response(200, {"data": run})

    def _admin_task_status(self, request: Request) -> Response:
        body = _json_body(request)
        if not isinstance(body, dict) or set(body) != {"task_id", "status"}:
            raise InvalidInput(problem('expected {"task_id": "...", "status": "..."}', key="body"))
        try:
            task = self.state.set_task_status(str(body["task_id"]), str(body["status"]))
        except ResourceNotFound:
            raise InvalidInput(
                problem("no such task", key="task_id", value=body["task_id"])
            ) from None
        return Response(200, {"data": task})

    def _admin_stats(self, request: Request) -> Response:
        runs, tasks = len(self.state.runs), len(self.state.tasks)
        return Response(
            200,
            {
                "data": {
                    "requests": self.stats.summary(),
                    "runs": runs,
                    "tasks": tasks,
                    "faults": self.faults.rules(),
                    "rate_limit": {"per_minute": self.limit.per_minute},
                    "connections": self.connection_stats(),
                }
            },
        )

    def reset(self) -> None:
        """Back to just started: no runs, tasks, faults, limit, counts; the fixture's tokens."""
        self.state.reset()
        self.faults.clear()
        self.limit.set(None)
        self.stats.clear()


def _positive_int(query: Mapping[str, str], key: str, default: int) -> int:
    text = query.get(key)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidInput(problem(f"The {key} must be an integer of at least 1.", key=key))
    return value


def _with(request: Request) -> set[str]:
    return {w.strip() for w in request.query.get("with", "").split(",") if w.strip()}


class SandboxServer:
    """A local Tallyfy-compatible API with fault injection (tallyfy-api.md, "The sandbox").

    ::

        with SandboxServer() as sb:            # the bundled demo organization, a free port
            client = TallyfyClient(sb.url, sb.organization_id, sb.token)
            sb.add_fault(FaultRule("drop_after", count=1))
            ...
            assert len(sb.runs()) == 1

    `fixture` is a path to, or the dict of, an organization like `demo_org.json`. `strict`
    requires `name` at launch, `X-Tallyfy-Client: APIClient`, `Accept: application/json`, an
    assignee on one-off tasks and a `source` on file values. `clock` stamps `created_at` and
    drives the rate limit's window (a FakeClock makes both deterministic in tests).
    `missing_client_status` is 401 (default) or 404 for a request without X-Tallyfy-Client.
    `max_connections`, `max_body_bytes` and `request_timeout` bound what clients can take
    (transport.py: at the connection cap the connection waiting longest on its client is
    closed; a larger body is a 413; a request not whole within the timeout a 408).
    """

    def __init__(
        self,
        fixture: Path | str | Mapping[str, Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        prefix: str = "/api",
        strict: bool = False,
        *,
        clock: Clock | None = None,
        missing_client_status: int = 401,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        if missing_client_status not in (401, 404):
            raise InvalidInput(problem("must be 401 or 404", key="missing_client_status"))
        self.limits = Limits(
            max_connections=max_connections,
            max_body_bytes=max_body_bytes,
            request_timeout=request_timeout,
        )
        if prefix and not prefix.startswith("/"):
            prefix = "/" + prefix
        self.host = host
        self.port = port
        self.prefix = prefix.rstrip("/")
        self.strict = strict
        self.state = SandboxState(load_fixture(fixture), clock or SystemClock())
        self.app = SandboxApp(
            self.state,
            prefix=self.prefix,
            strict=strict,
            missing_client_status=missing_client_status,
        )
        self._tcp: HttpServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def bind(self) -> HttpServer:
        """Open the listening socket now (so `url` has the real port) without serving yet."""
        if self._tcp is None:
            # `app.handle` is looked up per request: a test may wrap it on a running sandbox.
            self._tcp = HttpServer((self.host, self.port), self._handle, self.limits)
            self.port = int(self._tcp.server_address[1])
            self.app.connection_stats = self._tcp.connection_stats
        return self._tcp

    def _handle(self, request: Request) -> Response:
        return self.app.handle(request)

    def start(self) -> SandboxServer:
        """Listen (port 0 picks a free one) and serve from background threads; returns self."""
        if self._thread is not None:
            return self
        tcp = self.bind()
        self._thread = threading.Thread(
            target=tcp.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (the `tallyfy-scheduler sandbox` command)."""
        tcp = self.bind()
        try:
            tcp.serve_forever(poll_interval=0.05)
        except KeyboardInterrupt:
            pass
        finally:
            tcp.server_close()
            tcp.close_connections()
            self._tcp = None

    def stop(self) -> None:
        """Stop listening and close every open connection; safe to call twice."""
        tcp, thread = self._tcp, self._thread
        self._tcp = self._thread = None
        if tcp is None:
            return
        if thread is not None:
            tcp.shutdown()
            thread.join(timeout=5)
        tcp.server_close()
        tcp.close_connections()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses and identity ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT` without the API prefix (the admin endpoints live here)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The API base URL including the prefix, e.g. `http://127.0.0.1:43121/api`."""
        return self.base_url + self.prefix

    @property
    def organization_id(self) -> str:
        return self.state.organization_id

    @property
    def token(self) -> str:
        """The fixture's first token."""
        return str(self.state.fixture["tokens"][0])

    # --- what was created ---------------------------------------------------------------

    def runs(self) -> list[dict[str, Any]]:
        """Copies of every run created (launches and task fan-out containers), oldest first;
        deleted ones too, with status `deleted`."""
        return self.state.snapshot()[0]

    def tasks(self) -> list[dict[str, Any]]:
        """Copies of every task created (process steps and one-off tasks), oldest first;
        deleted ones too, with status `deleted`."""
        return self.state.snapshot()[1]

    def set_run_status(self, run_id: str, status: str) -> dict[str, Any]:
        """Complete (`complete`), archive (`archived`), reopen (`active`) or delete (`deleted`)
        a run, as a person does in Tallyfy (also `POST /_sandbox/run-status`); a copy of the
        changed run. A deleted run and its tasks are then 404 to the API and in no list."""
        return dict(self.state.set_run_status(run_id, status))

    def set_task_status(self, task_id: str, status: str) -> dict[str, Any]:
        """Complete (`completed`), archive (`archived`), reopen (`not-started`) or delete
        (`deleted`) a one-off task or a run's step, as a person does in Tallyfy (also
        `POST /_sandbox/task-status`); a copy of the changed task. A deleted task is then 404
        to the API and in no list."""
        return dict(self.state.set_task_status(task_id, status))

    def request_bodies(self, kind: str) -> list[Any]:
        """The JSON bodies of accepted creates, oldest first, exactly as sent: `runs`
        (launches) or `tasks` (one-off tasks); also `GET /_sandbox/bodies/runs` and `/tasks`."""
        return self.app.stats.bodies(kind)

    def request_count(self, method: str | None = None, path_contains: str | None = None) -> int:
        """Requests received (admin ones included), optionally by method and path substring."""
        return self.app.stats.count(method, path_contains)

    # --- faults, tokens, limits ---------------------------------------------------------

    @property
    def faults(self) -> FaultBook:
        """The active fault rules (also at `/_sandbox/faults`)."""
        return self.app.faults

    def add_fault(self, rule: FaultRule) -> None:
        self.app.faults.add(rule)

    def clear_faults(self) -> None:
        self.app.faults.clear()

    def add_token(self, token: str) -> None:
        self.state.add_token(token)

    def expire_token(self, token: str) -> None:
        self.state.expire_token(token)

    def set_rate_limit(self, per_minute: int | None) -> None:
        """At most `per_minute` requests per token in any rolling minute (429 beyond); None: off."""
        self.app.limit.set(per_minute)

    def reset(self) -> None:
        """Forget runs, tasks, faults, the rate limit and request counts; restore the tokens."""
        self.app.reset()


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    fixture: Path | str | Mapping[str, Any] | None = None,
    strict: bool = False,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
) -> None:
    """Run a sandbox in the foreground until Ctrl-C; prints one line: URL, organization, token.

    The limits are SandboxServer's.
    """
    server = SandboxServer(
        fixture,
        host=host,
        port=port,
        strict=strict,
        max_connections=max_connections,
        max_body_bytes=max_body_bytes,
        request_timeout=request_timeout,
    )
    server.bind()
    sys.stdout.write(
        f"Tallyfy sandbox at {server.url}  organization {server.organization_id}"
        f"  token {server.token}\n"
    )
    sys.stdout.flush()
    server.serve_forever()
