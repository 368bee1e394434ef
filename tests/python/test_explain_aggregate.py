"""explain of aggregate: `aggregate` with `explain: true` and the `explain` command, in
mongod 7.0's classic shapes (a `$cursor` stage for the collection read, the other
stages after it, per-stage counts with executionStats)."""

import pytest
from pymongo.errors import OperationFailure


@pytest.fixture
def coll(db):
    db.c.insert_many([{"_id": i, "a": i % 3, "b": i} for i in range(30)])
    db.c.create_index("a")
    return db.c


def stage_names(plan):
    names = []
    while plan:
        names.append(plan["stage"])
        plan = plan.get("inputStage")
    return names


def test_explain_true_shows_the_read_then_the_stages(db, coll):
    pipeline = [{"$match": {"a": 1}}, {"$group": {"_id": "$a", "n": {"$sum": 1}}}]
    out = db.command("aggregate", "c", pipeline=pipeline, explain=True)
    assert out["explainVersion"] == "1"
    cursor = out["stages"][0]["$cursor"]
    planner = cursor["queryPlanner"]
    assert planner["namespace"] == f"{db.name}.c"
    assert planner["parsedQuery"] == {"a": 1}
    assert stage_names(planner["winningPlan"]) == ["FETCH", "IXSCAN"]
    assert planner["winningPlan"]["inputStage"]["indexName"] == "a_1"
    assert "executionStats" not in cursor
    assert out["stages"][1] == {"$group": {"_id": "$a", "n": {"$sum": 1}}}
    assert out["command"]["pipeline"] == pipeline
    assert "cursor" not in out
    # Nothing ran: the stages carry no counts.
    assert "nReturned" not in out["stages"][1]


def test_execution_stats_count_every_stage(db, coll):
    out = db.command(
        "explain",
        {
            "aggregate": "c",
            "pipeline": [
                {"$match": {"b": {"$gte": 10}}},
                {"$project": {"a": 1}},
                {"$group": {"_id": "$a"}},
            ],
            "cursor": {},
        },
        verbosity="executionStats",
    )
    cursor, project, group = out["stages"]
    stats = cursor["$cursor"]["executionStats"]
    assert stats["nReturned"] == 20
    assert stats["totalDocsExamined"] == 30
    assert stage_names(stats["executionStages"]) == ["COLLSCAN"]
    assert cursor["nReturned"] == 20
    assert project["nReturned"] == 20 and "$project" in project
    assert group["nReturned"] == 3
    assert isinstance(group["executionTimeMillisEstimate"], int)


def test_a_pipeline_the_read_takes_whole_is_explained_as_a_query(db, coll):
    out = db.command(
        "explain",
        {"aggregate": "c", "pipeline": [{"$match": {"a": 2}}], "cursor": {}},
        verbosity="executionStats",
    )
    assert "stages" not in out
    assert stage_names(out["queryPlanner"]["winningPlan"]) == ["FETCH", "IXSCAN"]
    assert out["executionStats"]["nReturned"] == 10
    assert out["executionStats"]["totalKeysExamined"] == 10


def test_an_index_served_sort_joins_the_read(db, coll):
    sorted_by_index = db.command(
        "aggregate", "c", pipeline=[{"$sort": {"a": 1}}, {"$limit": 4}, {"$count": "n"}], explain=True
    )
    cursor, count = sorted_by_index["stages"]
    plan = cursor["$cursor"]["queryPlanner"]["winningPlan"]
    assert "SORT" not in stage_names(plan)
    assert "IXSCAN" in stage_names(plan)
    assert "$count" in count
    in_memory = db.command("aggregate", "c", pipeline=[{"$sort": {"b": -1}}, {"$count": "n"}], explain=True)
    assert [list(s)[0] for s in in_memory["stages"]] == ["$cursor", "$sort", "$count"]


def test_missing_collection_reads_nothing(db):
    out = db.command("aggregate", "nothing", pipeline=[{"$group": {"_id": 1}}], explain=True)
    assert out["stages"][0]["$cursor"]["queryPlanner"]["winningPlan"] == {"stage": "EOF"}


def test_collectionless_pipelines_have_no_cursor_stage(db):
    out = db.command("aggregate", 1, pipeline=[{"$documents": [{"x": 1}]}, {"$set": {"y": 2}}], explain=True)
    assert [list(s)[0] for s in out["stages"]] == ["$documents", "$set"]


def test_explaining_an_out_never_writes(db, coll):
    out = db.command(
        "explain",
        {"aggregate": "c", "pipeline": [{"$match": {"a": 0}}, {"$out": "target"}], "cursor": {}},
        verbosity="executionStats",
    )
    assert out["stages"][0]["nReturned"] == 10
    assert out["stages"][-1] == {"$out": "target"}
    assert "target" not in db.list_collection_names()


def test_views_are_explained_through_their_pipeline(db, coll):
    db.command("create", "v", viewOn="c", pipeline=[{"$match": {"a": 1}}])
    out = db.command("aggregate", "v", pipeline=[{"$project": {"b": 1}}], explain=True)
    cursor = out["stages"][0]["$cursor"]["queryPlanner"]
    assert cursor["namespace"] == f"{db.name}.c"
    assert cursor["parsedQuery"] == {"a": 1}


def test_change_streams_are_not_explained(db, coll):
    with pytest.raises(OperationFailure) as err:
        db.command("aggregate", "c", pipeline=[{"$changeStream": {}}], explain=True)
    assert err.value.code == 115


def test_geo_near_reads_its_collection_itself(db):
    db.places.insert_many(
        [{"_id": i, "loc": {"type": "Point", "coordinates": [-73.97 + i / 100, 40.77]}} for i in range(5)]
    )
    db.places.create_index([("loc", "2dsphere")])
    pipeline = [
        {"$geoNear": {"near": {"type": "Point", "coordinates": [-73.97, 40.77]}, "distanceField": "d"}},
        {"$limit": 2},
    ]
    assert [d["_id"] for d in db.places.aggregate(pipeline)] == [0, 1]
    out = db.command(
        "explain", {"aggregate": "places", "pipeline": pipeline, "cursor": {}}, verbosity="executionStats"
    )
    geo_near, limit = out["stages"]
    assert "$geoNear" in geo_near and geo_near["nReturned"] == 2
    assert limit["nReturned"] == 2
