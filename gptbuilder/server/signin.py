"""The store's sign-in page: a person pastes their API key once and the browser keeps a signed session cookie.

The cookie holds the key's id and an expiry, signed with a key in the database (never the API key), and
is HttpOnly and SameSite=Lax; writes are also refused from other sites' pages (`app._Guard`).
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .auth import SESSION_COOKIE, client_ip
from .errors import APIError

router = APIRouter(include_in_schema=False)

SIGNIN_PATH = "/signin"
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in — gptbuilder</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; min-height: 100vh; display: grid; place-items: center;
       background: #f6f7fb; color: #1f2328; }}
main {{ background: #fff; padding: 2rem; border-radius: 12px; box-shadow: 0 2px 12px #0001; width: min(26rem, 92vw); }}
h1 {{ font-size: 1.4rem; margin: 0 0 0.5rem; }}
label {{ display: block; font-weight: 600; margin: 1rem 0 0.3rem; }}
input {{ width: 100%; box-sizing: border-box; padding: 0.6rem; font: inherit; border: 1px solid #c8ccd4; border-radius: 8px; }}
button {{ margin-top: 1rem; width: 100%; padding: 0.6rem; font: inherit; font-weight: 600; color: #fff; background: #4f46e5;
         border: 0; border-radius: 8px; cursor: pointer; }}
p.error {{ color: #b42318; background: #fef3f2; padding: 0.5rem 0.7rem; border-radius: 8px; }}
p.hint {{ color: #57606a; font-size: 0.9rem; }}
@media (prefers-color-scheme: dark) {{ body {{ background: #0d1117; color: #e6edf3; }} main {{ background: #161b22; }}
  input {{ background: #0d1117; color: #e6edf3; border-color: #30363d; }} p.hint {{ color: #8b949e; }} }}
</style></head>
<body><main>
<h1>Sign in to the GPT store</h1>
<p class="hint">This gptbuilder server needs an API key. Paste the key the operator gave you; this browser then
stays signed in for {days} days.</p>
{error}
<form method="post" action="{action}">
<label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
</form>
</main></body></html>
"""


def signin_location(path: str, query: str = "") -> str:
    """Where a browser without a session is sent: the sign-in page, coming back to ``path`` afterwards."""
    target = path + (f"?{query}" if query else "")
    return f"{SIGNIN_PATH}?next={quote(target, safe='/')}"


def _local(target: str | None) -> str:
    """``target`` when it is a path on this server, else "/" (no open redirect to another site)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or any(c in target for c in "\r\n"):
        return "/"
    return target


def _page(request: Request, *, error: str = "", target: str = "/", status: int = 200) -> HTMLResponse:
    state = request.app.state.gptbuilder
    body = _PAGE.format(
        days=max(1, state.config.session_seconds // 86400),
        error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
        action=SIGNIN_PATH,
        next=html.escape(target, quote=True),
    )
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


@router.get(SIGNIN_PATH)
def signin_page(request: Request, target: str = Query("/", alias="next")) -> Response:
    """The sign-in form (a server without keys has nothing to sign in to: straight to the store)."""
    if not request.app.state.gptbuilder.config.auth_required:
        return RedirectResponse(_local(target), status_code=303)
    return _page(request, target=_local(target))


@router.post(SIGNIN_PATH)
async def signin(request: Request) -> Response:
    """Check the pasted key; on success set the session cookie and go back where the person was going."""
    state = request.app.state.gptbuilder
    try:
        fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
    except ValueError:
        return _page(request, error="The form was not understood; reload the page.", status=400)
    key = (fields.get("key") or [""])[0].strip()
    target = _local((fields.get("next") or ["/"])[0])
    if not state.config.auth_required:
        return RedirectResponse(target, status_code=303)
    try:
        _caller, token = state.keys.signed_in(key, client_ip(request))
    except APIError as exc:
        message = "That key is not valid. Check it and try again." if exc.status == 401 else exc.message
        return _page(request, error=message, target=target, status=exc.status)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=state.config.session_seconds, path="/", httponly=True, samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/signout")
def signout() -> Response:
    """Forget this browser's session."""
    response = RedirectResponse(SIGNIN_PATH, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
