"""Time-series collections through pymongo, on the manual's `weather` example: `create`'s
options and errors as mongod 7.0 gives them, `listCollections`/`listIndexes`, measurements
read back as inserted (shared `_id`s included), 7.0's update and delete rules, no change
streams, and `expireAfterSeconds` expiring old measurements (`ttlMonitorSleepSecs` 1 s)."""

from __future__ import annotations

import datetime
import time

import bson
import pytest
from conftest import EddyServer
from pymongo.errors import BulkWriteError, OperationFailure, WriteError

UTC = datetime.timezone.utc


def code_of(fn) -> int:
    with pytest.raises((OperationFailure, WriteError, BulkWriteError)) as ei:
        fn()
    return ei.value.code


def weather_docs() -> list[dict]:
    day = datetime.datetime(2021, 5, 18, tzinfo=UTC)
    return [
        {"metadata": {"sensorId": 5578, "type": "temperature"}, "timestamp": day, "temp": 12},
        {
            "metadata": {"sensorId": 5578, "type": "temperature"},
            "timestamp": day + datetime.timedelta(hours=4),
            "temp": 11,
        },
        {
            "metadata": {"sensorId": 5579, "type": "temperature"},
            "timestamp": day + datetime.timedelta(hours=8),
            "temp": 13,
        },
    ]


@pytest.fixture
def weather(db):
    db.create_collection(
        "weather",
        timeseries={"timeField": "timestamp", "metaField": "metadata", "granularity": "hours"},
    )
    return db.weather


def test_create_and_list_as_mongod(db, weather):
    infos = {i["name"]: i for i in db.list_collections()}
    ts = infos["weather"]
    assert ts["type"] == "timeseries"
    assert ts["options"] == {
        "timeseries": {
            "timeField": "timestamp",
            "metaField": "metadata",
            "granularity": "hours",
            "bucketMaxSpanSeconds": 2592000,
        }
    }
    assert ts["info"] == {"readOnly": False}
    buckets = infos["system.buckets.weather"]
    assert buckets["type"] == "collection"
    assert buckets["options"]["clusteredIndex"] is True
    assert buckets["options"]["timeseries"] == ts["options"]["timeseries"]
    # mongod 6.3+: an index on {metaField: 1, timeField: 1}, and no `_id` index.
    assert [(i["name"], dict(i["key"])) for i in weather.list_indexes()] == [
        ("metadata_1_timestamp_1", {"metadata": 1, "timestamp": 1})
    ]
    db.create_collection("plain", timeseries={"timeField": "t"})
    plain = next(db.list_collections(filter={"name": "plain"}))
    assert plain["options"]["timeseries"] == {
        "timeField": "t",
        "granularity": "seconds",
        "bucketMaxSpanSeconds": 3600,
    }
    assert list(db.plain.list_indexes()) == []
    # Listed as mongod lists it, but Eddy keeps no buckets to read.
    assert code_of(lambda: db["system.buckets.weather"].find_one()) == 115
    db.create_collection(
        "custom",
        timeseries={"timeField": "t", "bucketMaxSpanSeconds": 600, "bucketRoundingSeconds": 600},
    )
    custom = next(db.list_collections(filter={"name": "custom"}))
    assert custom["options"]["timeseries"] == {
        "timeField": "t",
        "bucketRoundingSeconds": 600,
        "bucketMaxSpanSeconds": 600,
    }
    assert db.command("listCollections", filter={"type": "timeseries"}, nameOnly=True)[
        "cursor"
    ]["firstBatch"] == [
        {"name": "custom", "type": "timeseries"},
        {"name": "plain", "type": "timeseries"},
        {"name": "weather", "type": "timeseries"},
    ]


def test_create_errors(db):
    def create(**opts):
        return lambda: db.command("create", "t", **opts)

    ts = {"timeField": "time", "metaField": "meta"}
    assert code_of(create(timeseries={"metaField": "m"})) == 40414
    assert code_of(create(timeseries={"timeField": 1})) == 14
    assert code_of(create(timeseries={"timeField": "time", "other": 1})) == 40415
    assert code_of(create(timeseries={"timeField": "time", "granularity": "days"})) == 2
    assert code_of(create(timeseries={"timeField": "time", "metaField": "_id"})) == 72
    assert code_of(create(timeseries={"timeField": "time", "metaField": "time"})) == 72
    assert code_of(create(timeseries={"timeField": "a.b"})) == 72
    assert code_of(create(timeseries={"timeField": "time", "bucketMaxSpanSeconds": 60})) == 72
    mismatch = {"timeField": "time", "granularity": "minutes", "bucketMaxSpanSeconds": 60}
    assert code_of(create(timeseries=mismatch)) == 72
    with pytest.raises(OperationFailure) as ei:
        db.command("create", "t", timeseries=ts, capped=True, size=4096)
    assert ei.value.code == 72
    assert "'timeseries' is not allowed with 'capped'" in str(ei.value)
    assert code_of(create(timeseries=ts, validator={"a": 1})) == 72
    assert code_of(create(timeseries=ts, clusteredIndex={"key": {"_id": 1}, "unique": True})) == 72
    assert code_of(create(timeseries=ts, expireAfterSeconds=-1)) == 72
    assert code_of(create(expireAfterSeconds=10)) == 72
    db.command("create", "t", timeseries=ts, capped=False)
    assert "t" in db.list_collection_names()


def test_measurements_come_back_as_inserted(weather):
    weather.insert_many(weather_docs())
    got = list(weather.find({}, {"_id": 0}).sort("timestamp", 1))
    assert got == [
        {k: v.replace(tzinfo=None) if isinstance(v, datetime.datetime) else v for k, v in d.items()}
        for d in weather_docs()
    ]
    assert all(d["_id"] for d in weather.find())
    # Measurements may share an `_id`: no `_id` index on a time-series collection.
    t = datetime.datetime(2022, 1, 1, tzinfo=UTC)
    weather.insert_many([{"_id": 1, "timestamp": t}, {"_id": 1, "timestamp": t, "n": 2}])
    assert weather.count_documents({"_id": 1}) == 2
    assert [d.get("n") for d in weather.find({"_id": 1})] == [None, 2]
    avg = list(
        weather.aggregate(
            [
                {"$match": {"temp": {"$exists": True}}},
                {"$group": {"_id": "$metadata.sensorId", "avgTemp": {"$avg": "$temp"}}},
                {"$sort": {"_id": 1}},
            ]
        )
    )
    assert avg == [{"_id": 5578, "avgTemp": 11.5}, {"_id": 5579, "avgTemp": 13.0}]
    # An index on a measurement's field serves queries.
    weather.create_index([("metadata.sensorId", 1), ("timestamp", -1)])
    plan = weather.find({"metadata.sensorId": 5579}).explain()["queryPlanner"]["winningPlan"]
    assert "IXSCAN" in str(plan)
    assert weather.find_one({"metadata.sensorId": 5579})["temp"] == 13
    assert code_of(lambda: weather.create_index("temp", unique=True)) == 72


def test_the_time_field_must_be_a_date(weather):
    with pytest.raises(BulkWriteError) as ei:
        weather.insert_many([{"timestamp": datetime.datetime.now(UTC)}, {"temp": 1}])
    err = ei.value.details["writeErrors"][0]
    assert err["index"] == 1 and err["code"] == 2
    assert err["errmsg"] == (
        "'timestamp' must be present and contain a valid BSON UTC datetime value"
    )
    assert code_of(lambda: weather.insert_one({"timestamp": "2021-05-18"})) == 2
    assert weather.count_documents({}) == 1


def test_updates_follow_7_0_rules(weather):
    weather.insert_many(weather_docs())
    # The manual's example: a multi update of the metaField, queried by the metaField.
    res = weather.update_many({"metadata.sensorId": 5578}, {"$set": {"metadata.type": "temp"}})
    assert (res.matched_count, res.modified_count) == (2, 2)
    assert weather.count_documents({"metadata.type": "temp"}) == 2
    assert code_of(lambda: weather.update_one({"metadata.sensorId": 5578}, {"$set": {"metadata.x": 1}})) == 72
    assert code_of(lambda: weather.update_many({"metadata.sensorId": 1}, {"$set": {"metadata.x": 1}}, upsert=True)) == 72
    assert code_of(lambda: weather.update_many({"temp": 12}, {"$set": {"metadata.x": 1}})) == 72
    assert code_of(lambda: weather.update_many({"metadata.sensorId": 5578}, {"$set": {"temp": 1}})) == 72
    assert code_of(lambda: weather.update_many({}, [{"$set": {"metadata.x": 1}}])) == 72
    with pytest.raises(WriteError) as ei:
        weather.update_many({"$or": [{"temp": 12}]}, {"$set": {"metadata.x": 1}})
    assert ei.value.code == 72
    assert "querying on a field that is not the metaField 'metadata'" in str(ei.value)
    assert code_of(lambda: weather.replace_one({}, {"timestamp": datetime.datetime.now(UTC)})) == 72
    assert weather.count_documents({"temp": 1}) == 0
    db = weather.database
    db.src.insert_one({"timestamp": datetime.datetime.now(UTC)})
    assert code_of(lambda: list(db.src.aggregate([{"$merge": {"into": "weather"}}]))) == 166
    assert weather.count_documents({}) == 3


def test_find_and_modify_is_refused_as_on_a_view(weather):
    # mongod 7.0 (without featureFlagTimeseriesUpdatesSupport): a view of its buckets.
    weather.insert_many(weather_docs())
    ns = f"{weather.database.name}.weather"
    for call in (
        lambda: weather.find_one_and_delete({}),
        lambda: weather.find_one_and_update({"metadata.sensorId": 5578}, {"$set": {"metadata.x": 1}}),
        lambda: weather.find_one_and_replace({}, {"timestamp": datetime.datetime.now(UTC)}),
    ):
        with pytest.raises(OperationFailure) as ei:
            call()
        assert ei.value.code == 166
        assert ei.value.details["errmsg"] == f"Namespace {ns} is a view, not a collection"
    assert weather.count_documents({}) == 3


def test_deletes_take_any_filter(weather):
    weather.insert_many(weather_docs())
    assert weather.delete_many({"temp": {"$gt": 12}}).deleted_count == 1
    assert weather.delete_one({"metadata.sensorId": 5578}).deleted_count == 1
    assert weather.count_documents({}) == 1


def test_no_change_streams_and_no_transactions(server: EddyServer):
    c = server.client()
    db = c.app
    db.create_collection("ts", timeseries={"timeField": "t"})
    assert code_of(lambda: db.ts.watch()) == 166
    with c.start_session() as s:
        with pytest.raises(OperationFailure) as ei:
            with s.start_transaction():
                db.ts.insert_one({"t": datetime.datetime.now(UTC)}, session=s)
        assert ei.value.code == 263
    assert db.ts.count_documents({}) == 0
    with pytest.raises(OperationFailure) as ei:
        db.ts.rename("other")
    assert (ei.value.code, ei.value.details["errmsg"]) == (166, "cannot rename view: app.ts")
    db.plain.insert_one({"_id": 1})
    for drop_target in (False, True):
        with pytest.raises(OperationFailure) as ei:
            db.plain.rename("ts", dropTarget=drop_target)
        assert ei.value.code == 48
        assert ei.value.details["errmsg"] == "a view already exists with that name: app.ts"
    assert sorted(db.list_collection_names()) == ["plain", "system.buckets.ts", "ts"]
    assert code_of(lambda: db.command("cloneCollectionAsCapped", "ts", toCollection="c", size=4096)) == 166


def test_expire_after_seconds_removes_old_measurements(eddy_factory):
    server = eddy_factory(extra_args=["--setParameter", "ttlMonitorSleepSecs=1"])
    db = server.client().app
    db.create_collection(
        "weather", timeseries={"timeField": "timestamp", "metaField": "metadata"}, expireAfterSeconds=3600
    )
    info = next(db.list_collections(filter={"name": "weather"}))
    assert info["options"]["expireAfterSeconds"] == 3600
    now = datetime.datetime.now(UTC)
    db.weather.insert_many(
        [
            {"metadata": 1, "timestamp": now - datetime.timedelta(hours=2), "temp": 1},
            {"metadata": 1, "timestamp": now, "temp": 2},
        ]
    )
    deadline = time.monotonic() + 10
    while db.weather.count_documents({}) > 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [d["temp"] for d in db.weather.find()] == [2]


def test_database_streams_skip_measurements(server: EddyServer):
    db = server.client().app
    db.create_collection("ts", timeseries={"timeField": "t"})
    with db.watch(max_await_time_ms=200) as stream:
        db.ts.insert_one({"t": datetime.datetime.now(UTC)})
        db.plain.insert_one({"_id": 1})
        event = None
        deadline = time.monotonic() + 5
        while event is None and time.monotonic() < deadline:
            event = stream.try_next()
        assert event["ns"] == {"db": "app", "coll": "plain"}


def options_of(db, name: str) -> dict:
    return next(db.list_collections(filter={"name": name}))["options"]


def test_coll_mod_expire_after_seconds(db):
    db.create_collection("ts", timeseries={"timeField": "t"}, expireAfterSeconds=5)
    db.create_collection("plain")
    with pytest.raises(OperationFailure) as ei:
        db.command("collMod", "plain", expireAfterSeconds=10)
    assert ei.value.code == 72
    assert ei.value.details["errmsg"] == (
        "'expireAfterSeconds' option is only supported on collections clustered by _id"
    )
    with pytest.raises(OperationFailure) as ei:
        db.command("collMod", "ts", expireAfterSeconds="10")
    assert ei.value.code == 72
    assert ei.value.details["errmsg"] == (
        "Invalid string value for the 'clusteredIndex::expireAfterSeconds' option. "
        "Got: '10'. Accepted value is 'off'"
    )
    assert code_of(lambda: db.command("collMod", "ts", expireAfterSeconds={})) == 14
    assert code_of(lambda: db.command("collMod", "ts", expireAfterSeconds=-10)) == 72
    huge = bson.Int64(4611686018427387904)
    assert code_of(lambda: db.command("collMod", "ts", expireAfterSeconds=huge)) == 72
    assert options_of(db, "ts")["expireAfterSeconds"] == 5
    for value in (10, 0, "off", 100):
        assert db.command("collMod", "ts", expireAfterSeconds=value)["ok"] == 1
        for name in ("ts", "system.buckets.ts"):
            opts = options_of(db, name)
            if value == "off":
                assert "expireAfterSeconds" not in opts
            else:
                assert opts["expireAfterSeconds"] == value
                assert isinstance(opts["expireAfterSeconds"], bson.Int64)
    # A clustered collection takes it too.
    db.create_collection("clustered", clusteredIndex={"key": {"_id": 1}, "unique": True})
    db.command("collMod", "clustered", expireAfterSeconds=30)
    assert options_of(db, "clustered")["expireAfterSeconds"] == 30


def test_coll_mod_timeseries_bucketing(db):
    hours_span, hours_rounding, year = 60 * 60 * 24 * 30, 60 * 60 * 24, 86400 * 365
    db.create_collection("ts", timeseries={"timeField": "time", "granularity": "seconds"})
    ts = db.ts

    def coll_mod(**opts):
        return db.command("collMod", "ts", **opts)

    def fails(code, **opts):
        with pytest.raises(OperationFailure) as ei:
            coll_mod(**opts)
        assert ei.value.code == code, ei.value.details
        return ei.value.details["errmsg"]

    ts.create_index("a")
    assert "use the top-level 'expireAfterSeconds'" in fails(
        72, index={"keyPattern": {"a": 1}, "expireAfterSeconds": 100}
    )
    coll_mod(index={"keyPattern": {"a": 1}, "hidden": True})
    assert fails(72, validator={"required": ["time"]}) == (
        "option not supported on a time-series collection: validator"
    )
    fails(72, validationLevel="moderate")
    fails(72, validationAction="warn")
    coll_mod(timeseries={"granularity": "minutes"})
    assert options_of(db, "ts")["timeseries"] == {
        "timeField": "time",
        "granularity": "minutes",
        "bucketMaxSpanSeconds": 86400,
    }
    assert fails(72, timeseries={"granularity": "seconds"}) == (
        "Invalid transition for timeseries.granularity. Can only transition from 'seconds' "
        "to 'minutes' or 'minutes' to 'hours'."
    )
    coll_mod(timeseries={"granularity": "hours"})
    fails(72, timeseries={"granularity": "minutes"})
    fails(72, timeseries={"bucketMaxSpanSeconds": hours_span})
    fails(72, timeseries={"bucketRoundingSeconds": hours_rounding})
    assert "equal or greater" in fails(
        72, timeseries={"bucketMaxSpanSeconds": hours_rounding, "bucketRoundingSeconds": hours_rounding}
    )
    coll_mod(timeseries={"granularity": "hours", "bucketMaxSpanSeconds": hours_span})
    fails(
        72,
        timeseries={
            "granularity": "hours",
            "bucketMaxSpanSeconds": hours_span,
            "bucketRoundingSeconds": hours_rounding,
        },
    )
    fails(72, timeseries={"bucketMaxSpanSeconds": hours_span + 1, "bucketRoundingSeconds": hours_rounding + 1})
    coll_mod(timeseries={"bucketMaxSpanSeconds": hours_span + 1, "bucketRoundingSeconds": hours_span + 1})
    custom = {"timeField": "time", "bucketRoundingSeconds": hours_span + 1, "bucketMaxSpanSeconds": hours_span + 1}
    assert options_of(db, "ts")["timeseries"] == custom
    assert options_of(db, "system.buckets.ts")["timeseries"] == custom
    coll_mod(timeseries={})
    assert fails(2, timeseries={"granularity": "days"}).startswith("Enumeration value 'days'")
    fails(40415, timeseries={"other": 1})
    fails(51024, timeseries={"bucketMaxSpanSeconds": year + 1, "bucketRoundingSeconds": year + 1})
    fails(51024, timeseries={"bucketMaxSpanSeconds": 0, "bucketRoundingSeconds": 0})
    coll_mod(timeseries={"bucketMaxSpanSeconds": year, "bucketRoundingSeconds": year})

    # From custom bucketing to a granularity whose spans are not smaller.
    db.create_collection("c", timeseries={"timeField": "t", "bucketMaxSpanSeconds": 200, "bucketRoundingSeconds": 200})
    db.command("collMod", "c", timeseries={"granularity": "minutes"})
    assert options_of(db, "c")["timeseries"] == {
        "timeField": "t",
        "granularity": "minutes",
        "bucketMaxSpanSeconds": 86400,
    }
    db.create_collection("plain")
    with pytest.raises(OperationFailure) as ei:
        db.command("collMod", "plain", timeseries={"granularity": "hours"})
    assert ei.value.code == 72
    assert ei.value.details["errmsg"] == "option only supported on a time-series collection: timeseries"


def test_expiry_set_by_coll_mod_removes_old_measurements(eddy_factory):
    server = eddy_factory(extra_args=["--setParameter", "ttlMonitorSleepSecs=1"])
    db = server.client().app
    db.create_collection("ts", timeseries={"timeField": "t", "metaField": "m"})
    now = datetime.datetime.now(UTC)
    db.ts.insert_many([{"m": 1, "t": now - datetime.timedelta(hours=2), "n": 1}, {"m": 1, "t": now, "n": 2}])
    time.sleep(1.5)
    assert db.ts.count_documents({}) == 2
    db.command("collMod", "ts", expireAfterSeconds=3600)
    deadline = time.monotonic() + 10
    while db.ts.count_documents({}) > 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [d["n"] for d in db.ts.find()] == [2]


def test_ttl_secondary_indexes_need_a_meta_filter(db):
    db.create_collection("ts", timeseries={"timeField": "tm", "metaField": "mm"})
    ts = db.ts

    def fails(code, keys, **opts):
        with pytest.raises(OperationFailure) as ei:
            ts.create_index(keys, **opts)
        assert ei.value.code == code, ei.value.details
        return ei.value.details["errmsg"]

    assert fails(72, "tm", expireAfterSeconds=3600) == (
        "TTL indexes on time-series collections require a partialFilterExpression on the metaField"
    )
    fails(72, "mm", expireAfterSeconds=3600)
    now = datetime.datetime.now(UTC)
    for bad in ({"data": {"$gt": 5}}, {"mm": {"$gt": 5}, "data": {"$gt": 5}}, {"tm": {"$gt": now}}):
        fails(72, "tm", expireAfterSeconds=400, partialFilterExpression=bad)
    on_meta = {"mm": {"$gt": 5}}
    assert fails(72, "mm", expireAfterSeconds=400, partialFilterExpression=on_meta) == (
        "TTL indexes on non-time fields are not supported on time-series collections"
    )
    fails(72, "data", expireAfterSeconds=400, partialFilterExpression=on_meta)
    assert fails(67, [("tm", 1), ("mm", 1)], expireAfterSeconds=400, partialFilterExpression=on_meta) == (
        "TTL indexes are single-field indexes, compound indexes do not support TTL. "
        "Index spec: { tm: 1, mm: 1 }"
    )
    fails(72, "data", sparse=True)
    fails(72, [("data", "text")])
    fails(85, "data", partialFilterExpression=on_meta, collation={"locale": "en"})
    ts.create_index("tm", name="partialTTLIndex", expireAfterSeconds=400, partialFilterExpression=on_meta)
    index = next(i for i in ts.list_indexes() if i["name"] == "partialTTLIndex")
    assert (dict(index["key"]), index["expireAfterSeconds"]) == ({"tm": 1}, 400)
    assert index["partialFilterExpression"] == on_meta
    ts.create_index([("mm", 1)], sparse=True)
    ts.create_index("data", partialFilterExpression={"data": {"$gt": 1}})


def test_ttl_secondary_index_expires_within_its_filter(eddy_factory):
    server = eddy_factory(extra_args=["--setParameter", "ttlMonitorSleepSecs=1"])
    db = server.client().app
    db.create_collection("ts", timeseries={"timeField": "tm", "metaField": "mm"})
    db.ts.create_index("tm", expireAfterSeconds=3600, partialFilterExpression={"mm": {"$gt": 5}})
    now = datetime.datetime.now(UTC)
    old = now - datetime.timedelta(hours=2)
    db.ts.insert_many([{"mm": 10, "tm": old, "n": 1}, {"mm": 1, "tm": old, "n": 2}, {"mm": 10, "tm": now, "n": 3}])
    deadline = time.monotonic() + 10
    while db.ts.count_documents({}) > 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sorted(d["n"] for d in db.ts.find()) == [2, 3]


def test_out_into_a_time_series_collection(db):
    t0 = datetime.datetime(2023, 1, 1, tzinfo=UTC)
    db.src.insert_many([{"_id": i, "t": t0 + datetime.timedelta(minutes=i), "m": i % 2, "v": i} for i in range(4)])
    spec = {"timeField": "t", "metaField": "m"}
    out = [{"$project": {"_id": 0}}, {"$out": {"db": db.name, "coll": "out", "timeseries": spec}}]
    assert list(db.src.aggregate(out)) == []
    info = next(db.list_collections(filter={"name": "out"}))
    assert info["type"] == "timeseries"
    assert info["options"]["timeseries"] == {
        "timeField": "t",
        "metaField": "m",
        "granularity": "seconds",
        "bucketMaxSpanSeconds": 3600,
    }
    assert [i["name"] for i in db.out.list_indexes()] == ["m_1_t_1"]
    assert sorted(d["v"] for d in db.out.find()) == [0, 1, 2, 3]
    db.out.create_index("v")
    # Again with the same options (the defaults spelled out): the contents are replaced.
    same = {**spec, "granularity": "seconds", "bucketMaxSpanSeconds": 3600}
    list(db.src.aggregate([{"$match": {"v": {"$lt": 2}}}, {"$out": {"db": db.name, "coll": "out", "timeseries": same}}]))
    assert sorted(d["v"] for d in db.out.find()) == [0, 1]
    assert sorted(i["name"] for i in db.out.list_indexes()) == ["m_1_t_1", "v_1"]
    # Named without the option, a time-series target stays one.
    list(db.src.aggregate([{"$out": "out"}]))
    assert next(db.list_collections(filter={"name": "out"}))["type"] == "timeseries"
    assert db.out.count_documents({}) == 4

    def out_fails(code, stage):
        with pytest.raises(OperationFailure) as ei:
            list(db.src.aggregate([stage]))
        assert ei.value.code == code, ei.value.details
        return ei.value.details["errmsg"]

    msg = out_fails(7406103, {"$out": {"db": db.name, "coll": "out", "timeseries": {**spec, "granularity": "hours"}}})
    assert msg == (
        "Time-series options inputted must match the existing time-series collection. "
        'Received: { timeField: "t", metaField: "m", granularity: "hours" }'
        'Found: { timeField: "t", metaField: "m", granularity: "seconds", bucketMaxSpanSeconds: 3600 }'
    )
    db.plain.insert_one({"_id": 1})
    assert out_fails(7268700, {"$out": {"db": db.name, "coll": "plain", "timeseries": spec}}) == (
        "Cannot create a time-series collection from a non time-series collection."
    )
    db.command("create", "view", viewOn="src", pipeline=[])
    out_fails(7268703, {"$out": {"db": db.name, "coll": "view", "timeseries": spec}})
    out_fails(40414, {"$out": {"db": db.name, "coll": "new", "timeseries": {"metaField": "m"}}})
    out_fails(72, {"$out": {"db": db.name, "coll": "new", "timeseries": {"timeField": "t", "metaField": "_id"}}})
    out_fails(14, {"$out": {"db": db.name, "coll": "new", "timeseries": 1}})
    # Measurements are checked as inserts are; the target is left as it was.
    db.bad.insert_many([{"t": t0, "m": 1}, {"t": "not a date", "m": 1}])
    with pytest.raises(OperationFailure) as ei:
        list(db.bad.aggregate([{"$out": {"db": db.name, "coll": "out", "timeseries": spec}}]))
    assert ei.value.code == 2
    assert db.out.count_documents({}) == 4
    assert "new" not in db.list_collection_names()
