"""Collations beyond filters and sorts, as mongod 7.0 applies them: `$group` keys and
accumulators, aggregation expressions (`$eq`, `$in`, set operators, ...), `$expr` in a find
filter, `$lookup` joins, `$bucket` boundaries and update operators (`$addToSet`, `$pull`,
`$min`/`$max`, `$push` with `$sort`), under a command's collation and under a collection's or
view's default collation. The first test is the aggregate manual's "Specify a Collation"."""

from __future__ import annotations

from pymongo.collation import Collation

CI = Collation(locale="en", strength=2)


def test_manual_group_example_with_command_collation(db):
    # db.collection.aggregate(), "Specify a Collation": fr, strength 1 ignores case and
    # accents, so the three categories are one group, named by the first one met.
    db.restaurants.insert_many(
        [
            {"_id": 1, "category": "café", "status": "Open"},
            {"_id": 2, "category": "cafe", "status": "open"},
            {"_id": 3, "category": "cafE", "status": "open"},
        ]
    )
    pipeline = [
        {"$match": {"status": "Open"}},
        {"$group": {"_id": "$category", "count": {"$sum": 1}}},
    ]
    got = list(db.restaurants.aggregate(pipeline, collation=Collation(locale="fr", strength=1)))
    assert got == [{"_id": "café", "count": 3}]
    # Without a collation: one exact match, one group.
    assert list(db.restaurants.aggregate(pipeline)) == [{"_id": "café", "count": 1}]


def test_group_accumulators_and_expressions(db):
    db.c.insert_many(
        [
            {"_id": 1, "k": "Apple", "t": "x", "a": "abc", "b": "ABC"},
            {"_id": 2, "k": "apple", "t": "X", "a": "abc", "b": "abd"},
            {"_id": 3, "k": "pear", "t": "y", "a": "b", "b": "A"},
        ]
    )
    grouped = list(
        db.c.aggregate(
            [
                {"$group": {"_id": "$k", "n": {"$sum": 1}, "tags": {"$addToSet": "$t"}}},
                {"$sort": {"_id": 1}},
            ],
            collation=CI,
        )
    )
    assert grouped == [
        {"_id": "Apple", "n": 2, "tags": ["x"]},
        {"_id": "pear", "n": 1, "tags": ["y"]},
    ]
    projected = list(
        db.c.aggregate(
            [
                {
                    "$project": {
                        "eq": {"$eq": ["$a", "$b"]},
                        "gt": {"$gt": ["$a", "$b"]},
                        "cmp": {"$cmp": ["$a", "$b"]},
                        "in": {"$in": ["$b", ["abc", "x"]]},
                        "set": {"$setUnion": [["$a"], ["$b"]]},
                    }
                },
                {"$sort": {"_id": 1}},
            ],
            collation=CI,
        )
    )
    assert projected == [
        {"_id": 1, "eq": True, "gt": False, "cmp": 0, "in": True, "set": ["abc"]},
        {"_id": 2, "eq": False, "gt": False, "cmp": -1, "in": False, "set": ["abc", "abd"]},
        {"_id": 3, "eq": False, "gt": True, "cmp": 1, "in": False, "set": ["A", "b"]},
    ]
    # Byte order without a collation ("A" < "a" < "b").
    simple = list(db.c.aggregate([{"$project": {"eq": {"$eq": ["$a", "$b"]}}}]))
    assert [d["eq"] for d in sorted(simple, key=lambda d: d["_id"])] == [False, False, False]


def test_expr_in_find_filter(db):
    db.people.insert_many(
        [
            {"_id": 1, "first": "anna", "last": "ANNA"},
            {"_id": 2, "first": "bob", "last": "Smith"},
        ]
    )
    query = {"$expr": {"$eq": ["$first", "$last"]}}
    assert [d["_id"] for d in db.people.find(query, collation=CI)] == [1]
    assert list(db.people.find(query)) == []
    assert db.people.count_documents(query, collation=CI) == 1


def test_lookup_joins_under_the_pipeline_collation(db):
    db.orders.insert_many([{"_id": 1, "item": "ALMONDS"}, {"_id": 2, "item": "pecans"}])
    db.inventory.insert_many(
        [
            {"_id": 10, "sku": "almonds"},
            {"_id": 11, "sku": "Almonds"},
            {"_id": 12, "sku": "PECANS"},
            {"_id": 13, "sku": "cashews"},
        ]
    )
    pipeline = [
        {
            "$lookup": {
                "from": "inventory",
                "localField": "item",
                "foreignField": "sku",
                "as": "inv",
            }
        },
        {
            "$lookup": {
                "from": "inventory",
                "let": {"item": "$item"},
                "pipeline": [{"$match": {"$expr": {"$eq": ["$sku", "$$item"]}}}],
                "as": "viaPipeline",
            }
        },
        {"$project": {"inv": "$inv._id", "viaPipeline": "$viaPipeline._id"}},
        {"$sort": {"_id": 1}},
    ]
    assert list(db.orders.aggregate(pipeline, collation=CI)) == [
        {"_id": 1, "inv": [10, 11], "viaPipeline": [10, 11]},
        {"_id": 2, "inv": [12], "viaPipeline": [12]},
    ]
    assert list(db.orders.aggregate(pipeline)) == [
        {"_id": 1, "inv": [], "viaPipeline": []},
        {"_id": 2, "inv": [], "viaPipeline": []},
    ]


def test_bucket_boundaries(db):
    db.words.insert_many([{"_id": 1, "w": "b"}, {"_id": 2, "w": "C"}, {"_id": 3, "w": "d"}])
    pipeline = [{"$bucket": {"groupBy": "$w", "boundaries": ["a", "c", "e"], "default": "other"}}]
    assert list(db.words.aggregate(pipeline, collation=CI)) == [
        {"_id": "a", "count": 1},
        {"_id": "c", "count": 2},
    ]
    # By bytes "C" is below "a".
    assert list(db.words.aggregate(pipeline)) == [
        {"_id": "a", "count": 1},
        {"_id": "c", "count": 1},
        {"_id": "other", "count": 1},
    ]


def test_collection_and_view_default_collation(db):
    db.create_collection("ci", collation=CI)
    db.ci.insert_many(
        [
            {"_id": 1, "k": "Apple", "first": "x", "last": "X"},
            {"_id": 2, "k": "APPLE", "first": "x", "last": "y"},
        ]
    )
    # No collation named: the collection's applies to $group and expressions.
    assert list(db.ci.aggregate([{"$group": {"_id": "$k", "n": {"$sum": 1}}}])) == [
        {"_id": "Apple", "n": 2}
    ]
    assert [d["_id"] for d in db.ci.find({"$expr": {"$eq": ["$first", "$last"]}})] == [1]
    # The simple collation, named, overrides it.
    simple = Collation(locale="simple")
    assert len(list(db.ci.aggregate([{"$group": {"_id": "$k"}}], collation=simple))) == 2
    # A view's default collation applies to the pipeline run on it.
    db.plain.insert_many([{"_id": 1, "k": "Pear"}, {"_id": 2, "k": "pear"}])
    db.command(
        "create", "pv", viewOn="plain", pipeline=[], collation={"locale": "en", "strength": 2}
    )
    assert list(db.pv.aggregate([{"$group": {"_id": "$k", "n": {"$sum": 1}}}])) == [
        {"_id": "Pear", "n": 2}
    ]


def test_update_operators_under_a_collation(db):
    db.u.insert_one({"_id": 1, "tags": ["foo", "bar"], "v": "124"})
    db.u.update_one({"_id": 1}, {"$addToSet": {"tags": "FOO"}}, collation=CI)
    assert db.u.find_one()["tags"] == ["foo", "bar"]
    db.u.update_one({"_id": 1}, {"$addToSet": {"tags": "FOO"}})
    assert db.u.find_one()["tags"] == ["foo", "bar", "FOO"]
    db.u.update_one({"_id": 1}, {"$pull": {"tags": "Foo"}}, collation=CI)
    assert db.u.find_one()["tags"] == ["bar"]
    db.u.update_one({"_id": 1}, {"$pull": {"tags": {"$in": ["BAR"]}}}, collation=CI)
    assert db.u.find_one()["tags"] == []
    # mongod's collation_update.js: "1234" > "124" under numericOrdering.
    numeric = Collation(locale="en_US", numericOrdering=True)
    r = db.u.update_one({"_id": 1}, {"$min": {"v": "1234"}}, collation=numeric)
    assert r.modified_count == 0
    db.u.update_one({"_id": 1}, {"$min": {"v": "1234"}})
    assert db.u.find_one()["v"] == "1234"
    # findAndModify and the collection's default collation.
    db.create_collection("uci", collation=CI)
    db.uci.insert_one({"_id": 1, "tags": ["foo"]})
    after = db.uci.find_one_and_update(
        {"_id": 1}, {"$addToSet": {"tags": {"$each": ["FOO", "Bar", "bar"]}}}, return_document=True
    )
    assert after["tags"] == ["foo", "Bar"]
    db.uci.update_one({"_id": 1}, {"$pull": {"tags": "BAR"}})
    assert db.uci.find_one()["tags"] == ["foo"]


def test_merge_when_matched_pipeline_under_the_collation(db):
    db.src.insert_one({"_id": 1, "name": "ANNA"})
    db.dst.insert_one({"_id": 1, "name": "anna"})
    same = [{"$set": {"same": {"$eq": ["$name", "$$new.name"]}}}]
    db.src.aggregate([{"$merge": {"into": "dst", "whenMatched": same}}], collation=CI)
    assert db.dst.find_one() == {"_id": 1, "name": "anna", "same": True}
    db.src.aggregate([{"$merge": {"into": "dst", "whenMatched": same}}])
    assert db.dst.find_one()["same"] is False


def test_let_variables_evaluate_under_the_collation(db):
    db.one.insert_one({"_id": 1})
    pipeline = [{"$project": {"v": "$$v"}}]
    let = {"v": {"$eq": ["a", "A"]}}
    assert list(db.one.aggregate(pipeline, let=let, collation=CI)) == [{"_id": 1, "v": True}]
    assert list(db.one.aggregate(pipeline, let=let)) == [{"_id": 1, "v": False}]
