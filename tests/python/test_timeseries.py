"""Time-series collections through pymongo, on the manual's `weather` example: `create`'s
options and errors as mongod 7.0 gives them, `listCollections`/`listIndexes`, measurements
read back as inserted (shared `_id`s included), 7.0's update and delete rules, no change
streams, and `expireAfterSeconds` expiring old measurements (`ttlMonitorSleepSecs` 1 s)."""

from __future__ import annotations

import datetime
import time

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
    assert code_of(lambda: weather.find_one_and_delete({})) == 115
    db = weather.database
    db.src.insert_one({"timestamp": datetime.datetime.now(UTC)})
    assert code_of(lambda: list(db.src.aggregate([{"$merge": {"into": "weather"}}]))) == 166
    assert code_of(lambda: list(db.src.aggregate([{"$out": "weather"}]))) == 115
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
    assert code_of(lambda: db.ts.rename("other")) == 115
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
