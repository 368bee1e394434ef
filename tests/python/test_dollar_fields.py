"""`$`-prefixed field names through pymongo, as mongod 7.0 stores and refuses them.

The cases follow the MongoDB manual ("Field Names with Periods and Dollar Signs" and its
"Dollar-Prefixed Field Names" page) and mongod's own jstests (`updateh.js`,
`field_name_validation.js`). Every accepted write is read back; every refused one is
checked by code and message (write errors carry no codeName, as with mongod) or, for
findAndModify's command errors, by code and codeName.
"""

from __future__ import annotations

import pytest
from bson import SON
from pymongo import ReturnDocument
from pymongo.errors import OperationFailure, WriteError


def hint(field: str) -> str:
    return (
        f"The dollar ($) prefixed field '{field}' in '{field}' is not allowed in the context of "
        "an update's replacement document. Consider using an aggregation pipeline with $replaceWith."
    )


def write_error(fn) -> tuple[int, str]:
    with pytest.raises(WriteError) as ei:
        fn()
    return ei.value.code, ei.value.details["errmsg"]


def command_error(fn) -> tuple[int, str]:
    with pytest.raises(OperationFailure) as ei:
        fn()
    return ei.value.code, ei.value.details["codeName"]


def test_inserts_take_dollar_fields_at_any_level(db):
    # The manual's two insert examples, reserved words included.
    db.sales.insert_one({"_id": 1, "$price": 50.00, "quantity": 30})
    assert db.sales.find_one({"_id": 1}) == {"_id": 1, "$price": 50.00, "quantity": 30}
    book = {"_id": 1, "$id": "h1961-01", "location": {"$db": "novels", "$ref": "2007042768", "$inc": True}}
    db.books.insert_one(book)
    assert list(db.books.find({"_id": 1})) == [book]
    # Dotted paths reach nested `$` names in queries.
    db.nested.insert_one({"_id": 1, "a": {"$b": 1}})
    assert [d["_id"] for d in db.nested.find({"a.$b": 1})] == [1]


def test_id_may_not_hold_dollar_fields(db):
    for bad, name in [({"$b": 1}, "$b"), ({"a": 1, "$b": 1}, "$b"), ({"a": {"$b": 1}}, "$b")]:
        code, msg = write_error(lambda: db.c.insert_one({"_id": bad, "x": 1}))
        assert (code, msg) == (52, f"_id fields may not contain '$'-prefixed fields: {name} is not valid for storage.")
    # A DBRef is a valid _id, and an embedded `_id` is an ordinary field.
    db.c.insert_one({"_id": SON([("$ref", "c"), ("$id", 1)])})
    db.c.insert_one({"_id": 2, "a": {"_id": {"$b": 1}}})
    assert db.c.count_documents({}) == 2
    # An upsert whose _id would hold one is refused too.
    code, _ = write_error(lambda: db.c.update_one({"a.b": 1}, {"$set": {"_id": {"$invalid": 1}}}, upsert=True))
    assert code == 52
    code, _ = write_error(lambda: db.c.replace_one({"a.b": 1}, {"_id": {"$invalid": 1}}, upsert=True))
    assert code == 52


def test_documented_upsert_then_the_same_update_on_the_match(db):
    # The manual: an upsert that inserts is validated as an insert ...
    r = db.expenses.update_one(
        {"date": "2021-07-07"}, {"$set": {"phone": 25.17, "$hotel": 320.10}}, upsert=True
    )
    assert r.upserted_id is not None
    got = db.expenses.find_one({"date": "2021-07-07"})
    assert list(got.items()) == [("_id", r.upserted_id), ("date", "2021-07-07"), ("$hotel", 320.10), ("phone", 25.17)]
    # ... and a similar update fails once it matches the existing document.
    code, msg = write_error(
        lambda: db.expenses.update_one(
            {"date": "2021-07-07"}, {"$set": {"phone": 25.17, "$hotel": 410.00}}, upsert=True
        )
    )
    assert (code, msg) == (52, hint("$hotel"))
    # mongod validates only what an operator changes: setting the same values is a no-op.
    r = db.expenses.update_one({"date": "2021-07-07"}, {"$set": {"phone": 25.17, "$hotel": 320.10}})
    assert (r.matched_count, r.modified_count) == (1, 0)
    assert db.expenses.find_one({"date": "2021-07-07"}) == got
    # The upsert of a top-level `$` field.
    r = db.u.update_one({"_id": "k"}, {"$set": {"$myKey": 1}}, upsert=True)
    assert r.upserted_id == "k"
    assert db.u.find_one({"_id": "k"}) == {"_id": "k", "$myKey": 1}


def test_update_operators_on_existing_documents(db):
    db.p.insert_one(
        {"_id": 1, "preferences": {"theme": "dark"}, "nested": {"data": {"$*": {"_id": 5, "k": 1}}}}
    )
    db.p.update_one({"_id": 1}, {"$set": {"preferences.$each": 42}})
    db.p.update_one({"_id": 1}, {"$unset": {"nested.data.$*._id": 1}})
    db.p.update_one({"_id": 1}, {"$inc": {"counts.$n": 2}})
    db.p.update_one({"_id": 1}, {"$set": {"secret.agent$.$x": 1, "ke$sha": 1}})
    assert db.p.find_one({"_id": 1}) == {
        "_id": 1,
        "preferences": {"theme": "dark", "$each": 42},
        "nested": {"data": {"$*": {"k": 1}}},
        "counts": {"$n": 2},
        "ke$sha": 1,
        "secret": {"agent$": {"$x": 1}},
    }
    # Top-level `$` names are refused on an existing document, whatever the operator.
    for update, field in [
        ({"$set": {"$z": 1}}, "$z"),
        ({"$inc": {"$z": 1}}, "$z"),
        ({"$set": {"$secret.agent.x": 1}}, "$secret"),
        ({"$rename": {"ke$sha": "$b"}}, "$b"),
        ({"$set": {"$reffoo": 1}}, "$reffoo"),
    ]:
        assert write_error(lambda: db.p.update_one({"_id": 1}, update)) == (52, hint(field)), update
    # A lone `$ref` is checked as a DBRef (55 InvalidDBRef).
    assert write_error(lambda: db.p.update_one({"_id": 1}, {"$set": {"$ref": "c"}})) == (
        55,
        "The DBRef $ref field must be followed by a $id field",
    )
    # Nothing of the refused updates was written.
    assert db.p.find_one({"_id": 1})["ke$sha"] == 1
    # A top-level `$` field already stored may be removed or renamed away.
    db.p.insert_one({"_id": 2, "$old": 1, "$gone": 2})
    db.p.update_one({"_id": 2}, {"$rename": {"$old": "new"}, "$unset": {"$gone": 1}})
    assert db.p.find_one({"_id": 2}) == {"_id": 2, "new": 1}


def test_positional_and_array_filters_with_dollar_names(db):
    db.a.insert_one({"_id": 1, "arr": [{"v": 1}, {"v": 2}]})
    db.a.update_one({"arr.v": 2}, {"$set": {"arr.$.$tag": "x"}})
    db.a.update_one({"_id": 1}, {"$set": {"arr.$[].$all": True}})
    db.a.update_one({"_id": 1}, {"$set": {"arr.$[e].$one": 1}}, array_filters=[{"e.v": 1}])
    assert db.a.find_one({"_id": 1})["arr"] == [
        {"v": 1, "$all": True, "$one": 1},
        {"v": 2, "$tag": "x", "$all": True},
    ]
    with pytest.raises(WriteError) as ei:
        db.a.update_one({"_id": 1}, {"$rename": {"arr.$": "b"}})
    assert ei.value.code == 2
    assert ei.value.details["errmsg"] == "The source field for $rename may not be dynamic: arr.$"


def test_replacements(db):
    db.r.insert_one({"_id": 1, "a": 1})
    db.r.replace_one({"_id": 1}, {"a": {"$c": 1, "bar": {"$d": 4}}})
    assert db.r.find_one({"_id": 1}) == {"_id": 1, "a": {"$c": 1, "bar": {"$d": 4}}}
    assert write_error(lambda: db.r.replace_one({"_id": 1}, {"a": 1, "$invalid": 1})) == (52, hint("$invalid"))
    # A replacement that matches nothing is not refused; an upsert inserts it as is.
    assert db.r.replace_one({"_id": 9}, {"a": 1, "$b": 2}).matched_count == 0
    r = db.r.replace_one({"_id": 9}, {"a": 1, "$b": 2}, upsert=True)
    assert r.upserted_id == 9
    assert db.r.find_one({"_id": 9}) == {"_id": 9, "a": 1, "$b": 2}
    # Changing `_id` to one holding a `$` name fails on the name first (52, not 66).
    assert write_error(lambda: db.r.replace_one({"_id": 1}, {"_id": {"a": {"$b": 1}}}))[0] == 52


def test_find_and_modify(db):
    db.f.insert_one({"_id": 1})
    assert command_error(lambda: db.f.find_one_and_update({"_id": 1}, {"$set": {"$x": 1}})) == (
        52,
        "DollarPrefixedFieldName",
    )
    assert command_error(lambda: db.f.find_one_and_replace({"_id": 1}, {"_id": 1, "$ref": "c"})) == (
        55,
        "InvalidDBRef",
    )
    got = db.f.find_one_and_update(
        {"_id": 1}, {"$set": {"out.$in": 1}}, return_document=ReturnDocument.AFTER
    )
    assert got == {"_id": 1, "out": {"$in": 1}}
    got = db.f.find_one_and_update(
        {"_id": 2}, {"$set": {"$x": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert got == {"_id": 2, "$x": 1}


def test_pipeline_updates_and_aggregation(db):
    db.g.insert_one({"_id": 1, "a": 1})
    db.g.update_one(
        {"_id": 1},
        [{"$replaceWith": {"$setField": {"field": {"$literal": "$price"}, "input": "$$ROOT", "value": 5}}}],
    )
    assert db.g.find_one({"_id": 1}) == {"_id": 1, "a": 1, "$price": 5}
    got = list(db.g.aggregate([{"$project": {"p": {"$getField": {"$literal": "$price"}}}}]))
    assert got == [{"_id": 1, "p": 5}]
    db.g.update_one({"_id": 1}, [{"$replaceWith": {"$literal": {"$ref": 1}}}])
    assert db.g.find_one({"_id": 1}) == {"_id": 1, "$ref": 1}


def test_change_events_carry_dollar_names_verbatim(db):
    coll = db.events
    coll.insert_one({"_id": 1, "preferences": {}})
    with coll.watch(max_await_time_ms=200) as stream:
        coll.update_one({"_id": 1}, {"$set": {"preferences.$each": 42}})
        coll.update_one({"_id": 2}, {"$set": {"$myKey": 1}}, upsert=True)
        events = []
        for _ in range(50):
            e = stream.try_next()
            if e is not None:
                events.append(e)
            if len(events) == 2:
                break
    update, insert = events
    assert update["operationType"] == "update"
    assert update["updateDescription"]["updatedFields"] == {"preferences.$each": 42}
    assert update["updateDescription"]["removedFields"] == []
    assert insert["operationType"] == "insert"
    assert insert["fullDocument"] == {"_id": 2, "$myKey": 1}


def test_dotted_field_names(db):
    # Dotted names are stored literally by inserts, replacements and `$literal` pipelines;
    # in queries and update operators a dot is a path.
    db.d.insert_many([{"_id": 1, "a.b": 1}, {"_id": 2, "a": {"x.y": 1}}, {"_id": {"a.b": 1}}])
    assert db.d.find_one({"_id": 1}) == {"_id": 1, "a.b": 1}
    assert list(db.d.find({"a.b": 1})) == []
    db.d.replace_one({"_id": 1}, {"c.d": 3})
    assert db.d.find_one({"_id": 1}) == {"_id": 1, "c.d": 3}
    db.d.update_one({"_id": 1}, {"$set": {"c.d": 4, "v": {"p.q": 1}}})
    assert db.d.find_one({"_id": 1}) == {"_id": 1, "c.d": 3, "c": {"d": 4}, "v": {"p.q": 1}}
    db.d.update_one({"_id": 1}, [{"$replaceWith": {"$literal": {"_id": 1, "a.b.c": 3}}}])
    assert db.d.find_one({"_id": 1}) == {"_id": 1, "a.b.c": 3}
    got = list(db.d.aggregate([{"$match": {"_id": 1}}, {"$project": {"v": {"$getField": "a.b.c"}}}]))
    assert got == [{"_id": 1, "v": 3}]
    # Without `$literal` an expression object may not name a dotted field.
    with pytest.raises(WriteError) as ei:
        db.d.update_one({"_id": 1}, [{"$replaceWith": {"_id": 1, "a.b.c": 3}}])
    assert ei.value.code == 16412


def test_dollar_fields_cannot_be_indexed(db):
    for key in ["$a", "a.$b", "$id"]:
        assert command_error(lambda: db.i.create_index([(key, 1)])) == (67, "CannotCreateIndex"), key
    with pytest.raises(OperationFailure) as ei:
        db.i.create_index([("a.$b", 1)])
    assert ei.value.details["errmsg"] == "Index key contains an illegal field name: field name starts with '$'."
    # DBRef names below the top level may be indexed.
    assert db.i.create_index([("ref.$id", 1)]) == "ref.$id_1"
