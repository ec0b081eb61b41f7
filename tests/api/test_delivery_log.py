"""The delivery log's `totalCount`: exact up to its cap, then the cap with `totalCountCapped` true; and the
pages by cursor, the form filter and the date range that the log's indexes serve."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.models import Delivery, DeliveryStatus, Event, Form, Integration, Workspace
from app.schema import relay

LOG = """query($s: String!, $f: DeliveryFilterInput, $after: String, $first: Int) { workspace(slug: $s) {
  deliveries(filter: $f, after: $after, first: $first) { totalCount totalCountCapped
    pageInfo { hasNextPage endCursor } edges { node { id } } } } }"""


async def _log(account, n: int) -> tuple[list[str], Integration]:
    workspace = await Workspace.get(slug=account.slug)
    form = await Form.create(workspace=workspace, slug="log-form", name="Log form")
    hook = await Integration.create(workspace=workspace, type="webhook", name="log hook")
    event = await Event.create(workspace=workspace, type="log.checked", payload={})
    made = [await Delivery.create(workspace=workspace, event=event, integration=hook, event_type=event.type,
                                  form=form if i % 2 else None, status=DeliveryStatus.SUCCEEDED)
            for i in range(n)]
    return [d.id for d in made], hook


async def test_total_count_stops_at_the_cap(account, monkeypatch):
    made, hook = await _log(account, 6)

    async def log(f=None, **variables):
        data = await account.gql(LOG, {"s": account.slug, "f": f, **variables})
        return data["workspace"]["deliveries"]

    everything = await log()
    assert (everything["totalCount"], everything["totalCountCapped"]) == (6, False)

    monkeypatch.setattr(relay, "COUNT_CAP", 4)
    capped = await log()
    assert (capped["totalCount"], capped["totalCountCapped"]) == (4, True)
    assert len(capped["edges"]) == 6  # the cap is on the count, never on the pages
    exact = await log({"formSlug": "log-form"})
    assert (exact["totalCount"], exact["totalCountCapped"]) == (3, False)
    monkeypatch.setattr(relay, "COUNT_CAP", 6)
    at_the_cap = await log()
    assert (at_the_cap["totalCount"], at_the_cap["totalCountCapped"]) == (6, False)

    seen, after = [], None
    while True:  # newest first, by cursor, two at a time
        page = await log(first=2, after=after)
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == sorted(made, reverse=True)

    now = datetime.now(UTC)
    today = await log({"integrationId": hook.id, "from": (now - timedelta(hours=1)).isoformat(),
                       "to": (now + timedelta(hours=1)).isoformat()})
    assert today["totalCount"] == 6
    yesterday = await log({"integrationId": hook.id, "to": (now - timedelta(days=1)).isoformat()})
    assert (yesterday["totalCount"], yesterday["edges"]) == (0, [])
