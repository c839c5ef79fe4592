"""Acme Shoes' demo order API, described by orders.openapi.yaml: a few in-memory orders, optional auth.

    python gpts/actions/orders_service.py --port 8765

Credentials come from the environment, all optional (no variable set: the API is open):
ACME_ORDERS_API_KEY (X-API-Key header or api_key query), ACME_ORDERS_TOKEN (Bearer),
ACME_ORDERS_USER + ACME_ORDERS_PASSWORD (Basic), ACME_ORDERS_CLIENT_ID + ACME_ORDERS_CLIENT_SECRET
(OAuth2 client credentials at POST /oauth/token).
"""

from __future__ import annotations

import argparse
import base64
import copy
import os
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

TOKEN_LIFETIME_S = 3600

ORDERS: dict[str, dict[str, Any]] = {
    "A1001": {
        "order_id": "A1001",
        "email": "jane@example.com",
        "status": "shipped",
        "placed_at": "2026-10-28",
        "items": [{"sku": "TR-42-BLU", "name": "Trail Runner, blue, size 42", "quantity": 1, "price": 89.0}],
        "total": 89.0,
        "carrier": "DHL",
        "tracking_number": "JD014600003828",
    },
    "A1002": {
        "order_id": "A1002",
        "email": "jane@example.com",
        "status": "processing",
        "placed_at": "2026-11-03",
        "items": [
            {"sku": "CL-39-WHT", "name": "City Loafer, white, size 39", "quantity": 1, "price": 75.0},
            {"sku": "SK-SOCK-3", "name": "Merino socks, 3 pairs", "quantity": 2, "price": 12.5},
        ],
        "total": 100.0,
        "carrier": None,
        "tracking_number": None,
    },
    "A1003": {
        "order_id": "A1003",
        "email": "sam@example.com",
        "status": "delivered",
        "placed_at": "2026-10-12",
        "items": [{"sku": "HB-44-BLK", "name": "Hiking Boot, black, size 44", "quantity": 1, "price": 139.0}],
        "total": 139.0,
        "carrier": "UPS",
        "tracking_number": "1Z999AA10123456784",
    },
}


class CancelRequest(BaseModel):
    """Why the customer cancels (optional)."""

    reason: str | None = Field(None, max_length=500)


def create_app(*, api_key: str | None = None, bearer_token: str | None = None, basic: tuple[str, str] | None = None,
               oauth_client: tuple[str, str] | None = None) -> FastAPI:
    """The order API; with no credential configured every request is allowed."""
    app = FastAPI(title="Acme Shoes orders", version="1.0")
    orders = copy.deepcopy(ORDERS)
    issued: dict[str, float] = {}  # OAuth access token -> expiry (monotonic)
    protected = any(x is not None for x in (api_key, bearer_token, basic, oauth_client))

    def authorized(request: Request) -> None:
        if not protected:
            return
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if api_key is not None:
            given = request.headers.get("x-api-key") or request.query_params.get("api_key") or ""
            if secrets.compare_digest(given.encode(), api_key.encode()):
                return
        if scheme == "bearer" and value:
            if bearer_token is not None and secrets.compare_digest(value.encode(), bearer_token.encode()):
                return
            if issued.get(value, 0) > time.monotonic():
                return
        if scheme == "basic" and basic is not None and _basic_matches(value, basic):
            return
        raise HTTPException(401, "missing or invalid credentials", headers={"WWW-Authenticate": "Bearer"})

    @app.get("/orders/{order_id}", operation_id="getOrder", dependencies=[Depends(authorized)])
    def get_order(order_id: str) -> dict[str, Any]:
        """One order by its id."""
        if order_id not in orders:
            raise HTTPException(404, f"no order {order_id!r}; order ids look like A1001")
        return orders[order_id]

    @app.get("/orders", operation_id="listOrders", dependencies=[Depends(authorized)])
    def list_orders(email: str = Query(min_length=3, max_length=254)) -> list[dict[str, Any]]:
        """Every order placed with this email address, newest first."""
        found = [o for o in orders.values() if o["email"].lower() == email.strip().lower()]
        return sorted(found, key=lambda o: o["placed_at"], reverse=True)

    @app.post("/orders/{order_id}/cancel", operation_id="cancelOrder", dependencies=[Depends(authorized)])
    def cancel_order(order_id: str, body: CancelRequest | None = None) -> dict[str, Any]:
        """Cancel an order that has not shipped yet."""
        order = orders.get(order_id)
        if order is None:
            raise HTTPException(404, f"no order {order_id!r}; order ids look like A1001")
        if order["status"] == "cancelled":
            return order
        if order["status"] != "processing":
            raise HTTPException(409, f"order {order_id} is already {order['status']}; start a return instead")
        order["status"] = "cancelled"
        order["cancel_reason"] = body.reason if body else None
        return order

    if oauth_client is not None:

        @app.post("/oauth/token", include_in_schema=False)
        async def token(request: Request) -> JSONResponse:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
            if form.get("grant_type") != "client_credentials":
                return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "basic":
                ok = _basic_matches(value, oauth_client, url_encoded=True)
            else:
                ok = _pair_matches(form.get("client_id", ""), form.get("client_secret", ""), oauth_client)
            if not ok:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            access_token = secrets.token_urlsafe(24)
            issued[access_token] = time.monotonic() + TOKEN_LIFETIME_S
            app.state.tokens_issued = getattr(app.state, "tokens_issued", 0) + 1
            return JSONResponse({"access_token": access_token, "token_type": "bearer", "expires_in": TOKEN_LIFETIME_S})

    return app


def _basic_matches(value: str, expected: tuple[str, str], *, url_encoded: bool = False) -> bool:
    from urllib.parse import unquote

    try:
        user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except ValueError:
        return False
    if url_encoded:  # RFC 6749 §2.3.1 form-encodes client id and secret inside Basic
        user, password = unquote(user), unquote(password)
    return _pair_matches(user, password, expected)


def _pair_matches(user: str, password: str, expected: tuple[str, str]) -> bool:
    return secrets.compare_digest(user.encode(), expected[0].encode()) & secrets.compare_digest(
        password.encode(), expected[1].encode()
    )


def _pair_from_env(first: str, second: str) -> tuple[str, str] | None:
    a, b = os.environ.get(first), os.environ.get(second)
    return (a, b) if a and b else None


def main(argv: list[str] | None = None) -> None:
    """Run the demo API with uvicorn (127.0.0.1 unless told otherwise)."""
    import uvicorn

    parser = argparse.ArgumentParser(description="Acme Shoes demo order API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    app = create_app(
        api_key=os.environ.get("ACME_ORDERS_API_KEY") or None,
        bearer_token=os.environ.get("ACME_ORDERS_TOKEN") or None,
        basic=_pair_from_env("ACME_ORDERS_USER", "ACME_ORDERS_PASSWORD"),
        oauth_client=_pair_from_env("ACME_ORDERS_CLIENT_ID", "ACME_ORDERS_CLIENT_SECRET"),
    )
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
