"""Feeds as server-side queues: X-LAST, X-RESUME-AFTER, reset to a moment, X-TYPES, page size."""

from __future__ import annotations

from datetime import UTC, datetime


def _signed(creditor, control, n=1, ct=None):
    ids = []
    for _ in range(n):
        mndt = creditor.invite(ct=ct)["mndtId"]
        r = control.post(f"/mandates/{mndt}/sign", json={"iban": "BE16645348971174", "bank_signature": False})
        assert r.status_code == 200, r.text
        ids.append(mndt)
    return ids


def test_x_last_and_empty_page(creditor, control):
    ids = _signed(creditor, control, 3)
    r = creditor.client.get("/mandate")
    msgs = r.json()["Messages"]
    assert [m["Mndt"]["MndtId"] for m in msgs] == ids
    assert int(r.headers["X-LAST"]) == msgs[-1]["EvtId"]
    assert [m["EvtId"] for m in msgs] == sorted(m["EvtId"] for m in msgs)
    empty = creditor.client.get("/mandate")
    assert empty.status_code == 200 and empty.json()["Messages"] == [] and "X-LAST" not in empty.headers
    assert "GrpHdr" in empty.json()


def test_resume_after_replays_events_already_seen(creditor, control):
    ids = _signed(creditor, control, 3)
    first = creditor.client.get("/mandate").json()["Messages"]
    assert creditor.client.get("/mandate").json()["Messages"] == []
    after_first = first[0]["EvtId"]
    r = creditor.client.get("/mandate", headers={"X-RESUME-AFTER": str(after_first)})
    assert [m["Mndt"]["MndtId"] for m in r.json()["Messages"]] == ids[1:]
    # the cursor moved on again: the next plain call is empty
    assert creditor.client.get("/mandate").json()["Messages"] == []
    everything = creditor.client.get("/mandate", headers={"X-RESUME-AFTER": "0"}).json()["Messages"]
    assert [m["Mndt"]["MndtId"] for m in everything] == ids


def test_feed_reset_to_a_moment_replays_from_then(creditor, control):
    early = _signed(creditor, control, 2)
    control.post("/clock/advance", json={"seconds": 3600})
    moment = control.get("/clock").json()["now"]
    control.post("/clock/advance", json={"seconds": 1})
    late = _signed(creditor, control, 2)
    assert len(creditor.drain("/mandate", "Messages")) == 4
    r = control.post(f"/creditors/{creditor.api_key}/feeds/reset", json={"feed": "mandate", "since": moment})
    assert r.json()["mandate"]["pending"] == 2
    assert [m["Mndt"]["MndtId"] for m in creditor.drain("/mandate", "Messages")] == late
    control.post(f"/creditors/{creditor.api_key}/feeds/reset", json={"feed": "mandate"})
    assert [m["Mndt"]["MndtId"] for m in creditor.drain("/mandate", "Messages")] == early + late
    assert datetime.fromisoformat(moment.replace("Z", "+00:00")).tzinfo == UTC


def test_feed_reset_all_covers_transactions(creditor, control):
    mndt = _signed(creditor, control)[0]
    creditor.client.post("/transaction", data={"mndtId": mndt, "message": "one", "amount": "10"})
    assert len(creditor.drain("/transaction", "Entries")) == 1
    control.post(f"/creditors/{creditor.api_key}/feeds/reset", json={"feed": "all", "after_seq": 0})
    assert len(creditor.drain("/transaction", "Entries")) == 1
    assert len(creditor.drain("/mandate", "Messages")) == 1


def test_x_types_filters_the_mandate_feed(creditor, control):
    core = _signed(creditor, control, 1)
    b2b = _signed(creditor, control, 1, ct=creditor.b2b)
    r = creditor.client.get("/mandate", headers={"X-TYPES": "B2B"})
    assert [m["Mndt"]["MndtId"] for m in r.json()["Messages"]] == b2b
    # CORE events were skipped over for this key's queue; replay shows both
    r = creditor.client.get("/mandate", headers={"X-RESUME-AFTER": "0"})
    assert [m["Mndt"]["MndtId"] for m in r.json()["Messages"]] == core + b2b


def test_page_size_and_chunk_size(creditor, control):
    control.patch(f"/creditors/{creditor.api_key}", json={"feed_page_size": 2})
    _signed(creditor, control, 5)
    sizes = []
    while page := creditor.client.get("/mandate").json()["Messages"]:
        sizes.append(len(page))
    assert sizes == [2, 2, 1]
    creditor.client.get("/mandate", headers={"X-RESUME-AFTER": "0"}, params={"chunkSize": 1})
    assert len(creditor.client.get("/mandate", params={"chunkSize": 1}).json()["Messages"]) == 1


def test_cancelled_mandate_include_adds_the_mandate(creditor, control):
    mndt = _signed(creditor, control)[0]
    creditor.drain("/mandate", "Messages")
    creditor.client.delete("/mandate", params={"mndtId": mndt, "rsn": "gone"})
    msg = creditor.client.get("/mandate", params={"include": "cancelled_mandate"}).json()["Messages"][0]
    assert msg["CxlRsn"]["Rsn"] == "gone" and msg["Mndt"]["MndtId"] == mndt


def test_feeds_are_per_api_key(creditor, control, sandbox):
    import httpx

    _signed(creditor, control, 1)
    other = control.post("/creditors", json={}).json()["api_key"]
    token = httpx.post(sandbox.api, data={"apiToken": other}).headers["Authorization"]
    r = httpx.get(f"{sandbox.api}/mandate", headers={"Authorization": token})
    assert r.json()["Messages"] == []
    assert len(creditor.client.get("/mandate").json()["Messages"]) == 1
