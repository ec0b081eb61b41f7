"""The pages the server itself serves: the portal, its embed script, GraphiQL and its local assets."""

from __future__ import annotations

import re


async def test_portal_embed_script_and_graphiql_are_served_without_a_cdn(http):
    portal = await http.get("/portal")
    assert portal.status_code == 200 and "text/html" in portal.headers["content-type"]
    assert "frame-ancestors 'self'" in portal.headers["content-security-policy"]
    embed = await http.get("/portal-embed.js")
    assert embed.status_code == 200 and "HookyardPortal" in embed.text

    page = await http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "/static/vendor/" in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text), "an asset from another host"
    for asset in ("graphiql/graphiql.min.js", "graphiql/graphiql.min.css", "react/umd/react.production.min.js",
                  "react-dom/umd/react-dom.production.min.js"):
        assert (await http.get(f"/static/vendor/{asset}")).status_code == 200, asset

    # Clients that are not browsers still get GraphQL on the same path.
    answer = await http.post("/graphql", json={"query": "{ __typename }"})
    assert answer.json() == {"data": {"__typename": "Query"}}
