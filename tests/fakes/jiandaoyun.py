"""A 简道云 form behind the open API v5, from hc.jiandaoyun.com's 开放平台 pages.

Implements ``POST /api/v5/app/entry/data/{list,create,update,delete}`` with
``Authorization: Bearer <API key>`` (``open/11261``):

- ``list`` (``open/14220``): ``{app_id, entry_id, fields?, filter?: {rel, cond:
  [{field, type, method: "eq", value: [..]}]}, limit?}`` → ``{"data": [entry, …]}``;
- ``create`` (``open/14222``): ``{app_id, entry_id, data: {<widget>: {"value": ..}},
  data_creator?, is_start_workflow?, is_start_trigger?, transaction_id?}`` →
  ``{"data": {"_id": .., …}}`` (the ``data/get`` shape; unconfirmed for create);
- ``update`` (``open/14224``): ``{app_id, entry_id, data_id, data, is_start_trigger?,
  transaction_id?}`` → ``{"data": {…}}``;
- ``delete`` (``open/14226``): ``{app_id, entry_id, data_id, is_start_trigger?}`` →
  ``{"status": "success"}``.

Errors are HTTP 400 with ``{"code", "msg"}``: over the rate limit ``{"code": 8303,
"msg": "超出请求频率限制"}`` (no ``Retry-After``). The other codes used here are
assumptions, because the full table on ``open/11261`` was not reachable:
``INVALID_REQUEST`` (1) for a malformed request and ``AUTH_FAILED`` for a bad key
(HTTP 401). An unknown widget or a value of the wrong type is refused (400). The
``duplicate`` fault is ``seed_duplicate``: two entries holding the same lead id.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web
from tests.fakes.http_fake import HttpFake, json_response, read_json

__all__ = ["AUTH_FAILED", "INVALID_REQUEST", "RATE_LIMITED", "JiandaoyunFake"]

RATE_LIMITED = 8303
INVALID_REQUEST = 1
AUTH_FAILED = 8304  # assumption (see the module docstring)

_TOP_KEYS = {
    "list": ({"app_id", "entry_id"}, {"fields", "filter", "limit", "data_id"}),
    "create": ({"app_id", "entry_id", "data"},
               {"data_creator", "is_start_workflow", "is_start_trigger", "transaction_id"}),
    "update": ({"app_id", "entry_id", "data_id", "data"}, {"is_start_trigger", "transaction_id"}),
    "delete": ({"app_id", "entry_id", "data_id"}, {"is_start_trigger"}),
}  # fmt: skip


def _error(code: int, msg: str, status: int = 400) -> web.Response:
    return json_response({"code": code, "msg": msg}, status)


class JiandaoyunFake(HttpFake):
    def __init__(
        self,
        api_key: str,
        app_id: str,
        entry_id: str,
        widgets: dict[str, type],
        *,
        lead_widget: str,
        rate_per_s: int | None = None,
    ) -> None:
        super().__init__(rate_per_s=rate_per_s)
        self.api_key = api_key
        self.app_id = app_id
        self.entry_id = entry_id
        #: widget id -> the Python type its value must have (str for text, int for number).
        self.widgets = widgets
        self.lead_widget = lead_widget
        self.entries: dict[str, dict[str, Any]] = {}  # _id -> {widget: value}

    def seed_duplicate(self, lead_id: str) -> None:
        for _ in range(2):
            self.entries[secrets.token_hex(12)] = {self.lead_widget: lead_id}

    def by_lead(self, lead_id: str) -> list[dict[str, Any]]:
        return [
            {"_id": k, **v} for k, v in self.entries.items() if v.get(self.lead_widget) == lead_id
        ]

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v5/app/entry/data/{verb}", self._dispatch)

    async def authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def unauthorized(self) -> web.Response:
        return _error(AUTH_FAILED, "API Key 无效", 401)

    def rate_limited(self) -> web.Response:
        return _error(RATE_LIMITED, "超出请求频率限制")

    def server_error(self, status: int) -> web.Response:
        return web.Response(status=status, text="<html><body>Bad Gateway</body></html>",
                            content_type="text/html")  # fmt: skip

    def _invalid(self, msg: str) -> web.Response:
        return self.reject("schema", _error(INVALID_REQUEST, msg))

    def _check_data(self, data: Any) -> str | None:
        if not isinstance(data, dict):
            return "data 必须是对象"
        for widget, cell in data.items():
            if widget not in self.widgets:
                return f"字段 {widget} 不存在"
            if not isinstance(cell, dict) or set(cell) != {"value"}:
                return f'字段 {widget} 的格式应为 {{"value": ...}}'
            value, kind = cell["value"], self.widgets[widget]
            if not isinstance(value, kind) or isinstance(value, bool):
                return f"字段 {widget} 的值类型错误"
        return None

    async def _dispatch(self, request: web.Request) -> web.Response:
        verb = request.match_info["verb"]
        if verb not in _TOP_KEYS:
            return self.reject("not_found", _error(INVALID_REQUEST, "接口不存在", 404))
        try:
            body = await read_json(request)
        except ValueError:
            return self._invalid("请求体不是 JSON")
        required, optional = _TOP_KEYS[verb]
        if not isinstance(body, dict) or not required <= set(body) <= required | optional:
            return self._invalid("请求参数错误")
        if body["app_id"] != self.app_id or body["entry_id"] != self.entry_id:
            return self._invalid("应用或表单不存在")
        if "data" in body:
            problem = self._check_data(body["data"])
            if problem is not None:
                return self._invalid(problem)
        if "data_id" in body and verb != "list" and body["data_id"] not in self.entries:
            return self._invalid("数据不存在")
        return getattr(self, f"_{verb}")(body)

    def _list(self, body: dict[str, Any]) -> web.Response:
        rows = [{"_id": k, **v} for k, v in self.entries.items()]
        conds = (body.get("filter") or {}).get("cond", [])
        for cond in conds:
            if cond.get("method") != "eq" or cond.get("field") not in self.widgets:
                return self._invalid("不支持的筛选条件")
            rows = [r for r in rows if r.get(cond["field"]) in cond.get("value", [])]
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            return self._invalid("limit 应在 1~100 之间")
        return json_response({"data": rows[:limit]})

    def _create(self, body: dict[str, Any]) -> web.Response:
        values = {w: c["value"] for w, c in body["data"].items()}
        if not isinstance(values.get(self.lead_widget), str):
            return self._invalid("缺少线索编号")  # the form's own rule, for a clear test failure
        data_id = secrets.token_hex(12)
        self.entries[data_id] = values
        self.accept("create", values[self.lead_widget], body.get("transaction_id"))
        return json_response({"data": {"_id": data_id, **values}})

    def _update(self, body: dict[str, Any]) -> web.Response:
        entry = self.entries[body["data_id"]]
        entry.update({w: c["value"] for w, c in body["data"].items()})
        self.accept("update", str(entry.get(self.lead_widget)), body["data_id"])
        return json_response({"data": {"_id": body["data_id"], **entry}})

    def _delete(self, body: dict[str, Any]) -> web.Response:
        entry = self.entries.pop(body["data_id"])
        self.accept("delete", str(entry.get(self.lead_widget)), body["data_id"])
        return json_response({"status": "success"})
