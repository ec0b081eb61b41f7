"""A page of deliveries loads its deliveries' event, integration, form and attempts for the whole page at once
(types.with_relations, loaders.attempts_of): each delivery answers exactly what `delivery(id:)`, which goes
through the resolvers one delivery at a time, answers for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.models import Delivery, DeliveryAttempt, DeliveryStatus, Event, Workspace

FIELDS = """fragment D on Delivery { id status eventType attemptCount responseCode createdAt request response
  integration { id name type } hook: integration { name } form { slug name } event { id type payload }
  attempts { id number trigger requestUrl responseCode responseHeaders responseBody durationMs errorMessage
             createdAt } ... on Delivery { again: attempts { number } } }"""
PAGE = "query($ws: String!) { workspace(slug: $ws) { deliveries(first: 10) { edges { node { ...D } } } } }" + FIELDS
OF_INTEGRATION = """query($id: ID!) { integration(id: $id) {
  deliveries(first: 10) { edges { node { ...D } } } } }""" + FIELDS
ONE = "query($id: ID!) { delivery(id: $id) { ...D } }" + FIELDS


async def _seed(account) -> tuple[list[str], str]:
    ids = []
    for name in ("first", "second"):
        made = await account.gql("""mutation($ws: String!, $name: String!) { integrationConnect(input: {
          workspace: $ws, type: WEBHOOK, name: $name, config: {url: "http://127.0.0.1:9/h"}}) {
          integration { id } } }""", {"ws": account.slug, "name": name})
        ids.append(made["integrationConnect"]["integration"]["id"])
    form = await account.gql("""mutation($ws: String!) { formCreate(input: {workspace: $ws, slug: "survey",
      name: "Survey"}) { form { id } } }""", {"ws": account.slug})
    form_id = form["formCreate"]["form"]["id"]
    workspace = await Workspace.get(slug=account.slug)
    start = datetime.now(UTC) - timedelta(hours=1)
    for n in range(5):
        event = await Event.create(workspace_id=workspace.id, form_id=form_id if n % 2 else None,
                                   type=f"page.test{n}", payload={"n": n})
        for k, integration_id in enumerate(ids):
            delivery = await Delivery.create(
                workspace_id=workspace.id, event_id=event.id, integration_id=integration_id,
                form_id=event.form_id, event_type=event.type, status=DeliveryStatus.SUCCEEDED, attempt_count=n % 3,
                response_code=200 if n % 3 else None, request={"method": "POST", "n": n} if n % 3 else None,
                response={"status": 200} if n % 3 else None)
            for number in range(1, n % 3 + 1):  # 0, 1 or 2 attempts
                await DeliveryAttempt.create(
                    delivery_id=delivery.id, number=number, trigger="automatic" if number == 1 else "manual",
                    request_url=f"http://127.0.0.1:9/h?{k}", response_code=500 if number == 1 else 200,
                    response_headers={"x-n": str(number)}, response_body="{}", duration_ms=10 * number,
                    error="HTTP 500" if number == 1 else None, created_at=start + timedelta(minutes=n, seconds=number))
    return ids, form_id


async def test_a_page_answers_what_each_delivery_answers(account):
    integration_ids, _ = await _seed(account)
    page = await account.gql(PAGE, {"ws": account.slug})
    nodes = [e["node"] for e in page["workspace"]["deliveries"]["edges"]]
    assert len(nodes) == 10
    for node in nodes:
        assert (await account.gql(ONE, {"id": node["id"]}))["delivery"] == node
    assert sorted({len(n["attempts"]) for n in nodes}) == [0, 1, 2]
    assert {n["form"]["slug"] if n["form"] else None for n in nodes} == {"survey", None}
    for node in nodes:
        assert [a["number"] for a in node["attempts"]] == list(range(1, len(node["attempts"]) + 1))
        assert node["again"] == [{"number": a["number"]} for a in node["attempts"]]
        assert node["hook"] == {"name": node["integration"]["name"]}

    of_one = await account.gql(OF_INTEGRATION, {"id": integration_ids[1]})
    theirs = [e["node"] for e in of_one["integration"]["deliveries"]["edges"]]
    assert theirs == [n for n in nodes if n["integration"]["id"] == integration_ids[1]]


async def test_a_page_reads_only_what_the_query_selects(account):
    await _seed(account)
    page = await account.gql("""query($ws: String!) { workspace(slug: $ws) { deliveries(first: 3) {
      edges { node { id attemptCount } } } } }""", {"ws": account.slug})
    assert [set(e["node"]) for e in page["workspace"]["deliveries"]["edges"]] == [{"id", "attemptCount"}] * 3
