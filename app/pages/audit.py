"""The audit trail page: a filter form, a table, and the same filters as a CSV download.
Server-rendered, every value escaped, no script."""
from __future__ import annotations

import html
import json
from pathlib import Path

from app.pages.admin_users import CSP  # noqa: F401  (the same policy: no script, this origin only)
from app.pages.base import page_head

e = html.escape
FIELDS = (("from", "From", "date"), ("to", "To", "date"), ("action", "Action", "text"),
          ("who", "Person", "text"), ("target", "Target", "text"))


def audit_html(static_dir: Path, *, events: list[dict], filters: dict[str, str], csv_query: str) -> str:
    inputs = "".join(f'<label>{e(label)} <input name="{name}" type="{kind}" value="{e(filters[name])}"></label>'
                     for name, label, kind in FIELDS)
    rows = "".join(
        f"<tr><td>{e(ev['at'][:19].replace('T', ' '))}</td><td>{e(ev['principal_name'] or '')}</td>"
        f"<td>{e(ev['action'])}</td><td>{e(ev['target'])}</td>"
        f"<td><code>{e(json.dumps(ev['detail'], ensure_ascii=False)[:500])}</code></td><td>{e(ev['ip'] or '')}</td></tr>"
        for ev in events)
    csv_href = "/api/audit.csv" + (f"?{csv_query}" if csv_query else "")
    return f"""{page_head(static_dir, "Audit trail")}
<body class="sm-admin">
<header><h1>Audit trail</h1><p><a href="/admin/users">Users</a> · <a href="/maps/overview">Map</a></p></header>
<main>
<form method="get" action="/admin/audit" class="sm-filters">{inputs}<button type="submit">Filter</button></form>
<p><a href="{e(csv_href)}">Download these events as CSV</a> (up to 100,000). Showing the newest {len(events)}.</p>
<table id="sm-audit"><thead><tr><th>When (UTC)</th><th>Who</th><th>Action</th><th>Target</th><th>Detail</th><th>Address</th></tr></thead>
<tbody>{rows}</tbody></table>
</main>
</body>
</html>"""
