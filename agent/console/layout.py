"""The console's page shell, its stylesheet and its script — plain strings, no build step, no CDN.

Every value that reaches a page goes through :func:`h` (``html.escape``): transcripts, names
and variables are whatever a caller said. The Content-Security-Policy allows only this server's
own script and style, so even a missed escape could not run a script.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

NAV = (("/", "Calls"), ("/bookings", "Bookings"), ("/campaigns", "Campaigns"),
       ("/flows", "Flows"), ("/stats", "Stats"))
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; media-src 'self'; connect-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def h(value: object) -> str:
    """Escaped for HTML text and quoted attributes."""
    return escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, *, active: str = "", signed_in: bool = True) -> web.Response:
    on = ' class="on"'
    links = "".join(f'<a href="{href}"{on if href == active else ""}>{h(name)}</a>'
                    for href, name in NAV)
    logout = ('<form method="post" action="/logout" class="logout">'
              '<button type="submit">Sign out</button></form>') if signed_in else ""
    text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{h(title)} · Slotline</title>'
            f'<link rel="stylesheet" href="/console/static/console.css">'
            f'<script src="/console/static/console.js" defer></script></head><body>'
            f'<header><span class="brand">Slotline</span><nav>{links}</nav>{logout}</header>'
            f'<main><h1>{h(title)}</h1>{body}</main></body></html>')
    return web.Response(text=text, content_type="text/html", headers=SECURITY_HEADERS)


def login_html(next_path: str, error: str) -> str:
    problem = f'<p class="error">{h(error)}</p>' if error else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<title>Sign in · Slotline</title>'
            f'<link rel="stylesheet" href="/console/static/console.css"></head><body>'
            f'<main class="login"><h1>Slotline console</h1>{problem}'
            f'<form method="post" action="/login">'
            f'<label>API token <input type="password" name="token" autofocus '
            f'autocomplete="current-password"></label>'
            f'<input type="hidden" name="next" value="{h(next_path)}">'
            f'<button type="submit">Sign in</button></form>'
            f'<p class="muted">The value of SLOTLINE_API_TOKEN on the server.</p></main>'
            f'</body></html>')


def table(headers: tuple[str, ...], rows: list[str], *, body_id: str = "",
          empty: str = "nothing yet") -> str:
    head = "".join(f"<th>{h(name)}</th>" for name in headers)
    tbody_id = f' id="{h(body_id)}"' if body_id else ""
    filler = "" if rows else f'<tr class="empty"><td colspan="{len(headers)}">{h(empty)}</td></tr>'
    return (f'<table><thead><tr>{head}</tr></thead><tbody{tbody_id}>{"".join(rows)}{filler}'
            f'</tbody></table>')


def definition_list(pairs: list[tuple[str, object]]) -> str:
    items = "".join(f"<dt>{h(key)}</dt><dd>{h(value)}</dd>" for key, value in pairs)
    return f"<dl>{items}</dl>" if pairs else '<p class="muted">none</p>'


def badge(status: str) -> str:
    kind = {"in-progress": "live", "completed": "ok", "confirmed": "ok", "running": "live",
            "failed": "bad", "cancelled": "muted", "paused": "warn"}.get(status, "")
    return f'<span class="badge {kind}">{h(status)}</span>'


CSS = """
:root { --fg:#1d2430; --muted:#6b7380; --line:#e3e6eb; --bg:#f6f7f9; --accent:#2457c5;
        --ok:#1c7c3a; --bad:#b3261e; --warn:#9a6700; --live:#2457c5; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color:var(--fg); background:var(--bg); }
header { display:flex; align-items:center; gap:24px; padding:10px 24px; background:#fff;
         border-bottom:1px solid var(--line); }
.brand { font-weight:700; font-size:16px; }
nav a { margin-right:16px; color:var(--muted); text-decoration:none; }
nav a.on, nav a:hover { color:var(--fg); font-weight:600; }
.logout { margin-left:auto; }
main { padding:16px 24px; max-width:1200px; }
main.login { max-width:360px; margin:80px auto; background:#fff; padding:24px;
             border:1px solid var(--line); border-radius:8px; }
main.login label { display:block; margin:12px 0; }
main.login input[type=password] { width:100%; padding:6px; }
h1 { font-size:20px; margin:4px 0 16px; }
h2 { font-size:16px; margin:24px 0 8px; }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line); }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line);
         vertical-align:top; }
th { background:#fafbfc; font-weight:600; color:var(--muted); }
tr.fresh td { animation: fresh 2s ease-out; }
@keyframes fresh { from { background:#fff6cc; } to { background:transparent; } }
a { color:var(--accent); }
.muted, tr.empty td { color:var(--muted); }
.error { color:var(--bad); }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; background:#eef0f3;
         font-size:12px; }
.badge.ok { background:#e3f4e8; color:var(--ok); }
.badge.bad { background:#fbe9e7; color:var(--bad); }
.badge.warn { background:#fff4d6; color:var(--warn); }
.badge.live { background:#e6eeff; color:var(--live); }
form.filters { display:flex; gap:12px; align-items:end; margin-bottom:12px; }
form.filters label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); }
input, select, button { font:inherit; padding:4px 8px; }
button { cursor:pointer; border:1px solid var(--line); background:#fff; border-radius:4px; }
#live { font-size:12px; color:var(--muted); }
#live.on::before { content:"\\25CF "; color:var(--ok); }
.chat { display:flex; flex-direction:column; gap:8px; max-width:760px; }
.bubble { padding:8px 12px; border-radius:12px; max-width:80%; background:#fff;
          border:1px solid var(--line); }
.bubble.agent { align-self:flex-start; background:#eef3ff; }
.bubble.caller { align-self:flex-end; background:#fff; }
.bubble .who { font-size:11px; color:var(--muted); }
.bubble.interrupted { border-color:var(--warn); }
.bubble .unheard { color:var(--muted); text-decoration:line-through; }
.bubble .note { font-size:11px; color:var(--warn); }
dl { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; background:#fff;
     padding:10px 14px; border:1px solid var(--line); }
dt { color:var(--muted); }
dd { margin:0; }
.charts svg, .graph svg { max-width:100%; height:auto; background:#fff;
                          border:1px solid var(--line); }
.path { font-family:ui-monospace, monospace; }
.problems li { color:var(--bad); }
"""

JS = """
"use strict";
(function () {
  function liveCalls(body) {
    var status = document.getElementById("live");
    var source = new EventSource("/console/events" + window.location.search);
    source.addEventListener("open", function () {
      status.className = "on"; status.textContent = "live";
    });
    source.addEventListener("error", function () {
      status.className = ""; status.textContent = "reconnecting";
    });
    source.addEventListener("call", function (event) {
      var update = JSON.parse(event.data);
      var holder = document.createElement("tbody");
      holder.innerHTML = update.html;  /* rendered and escaped by the server */
      var row = holder.firstElementChild;
      var old = body.querySelector('tr[data-sid="' + CSS.escape(update.sid) + '"]');
      var empty = body.querySelector("tr.empty");
      if (empty) { empty.remove(); }
      if (old) { old.replaceWith(row); }
      else { row.classList.add("fresh"); body.insertBefore(row, body.firstChild); }
    });
  }
  function campaignButtons() {
    document.querySelectorAll("button[data-campaign]").forEach(function (button) {
      button.addEventListener("click", function () {
        var url = "/api/campaigns/" + encodeURIComponent(button.dataset.campaign) +
                  "/" + button.dataset.verb;
        button.disabled = true;
        fetch(url, { method: "POST", credentials: "same-origin",
                     headers: { "X-Slotline-Console": "1" } })
          .then(function (response) {
            if (!response.ok) { return response.text().then(function (t) { throw new Error(t); }); }
            window.location.reload();
          })
          .catch(function (error) { button.disabled = false; window.alert(error.message); });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var body = document.getElementById("calls");
    if (body && body.dataset.live === "1") { liveCalls(body); }
    campaignButtons();
  });
})();
"""


async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(text=CSS, content_type="text/css",
                        headers={"Cache-Control": "max-age=300"})


async def script(request: web.Request) -> web.Response:
    return web.Response(text=JS, content_type="application/javascript",
                        headers={"Cache-Control": "max-age=300"})
