"""Text search through pymongo, against the MongoDB manual's worked examples: text indexes
(as `listIndexes` shows them), `$text` with terms, phrases, negations, `$language`,
`$caseSensitive` and `$diacriticSensitive`, `{$meta: "textScore"}` in projections, sorts and
aggregation stages, explain's TEXT stages, and mongod's errors."""

from __future__ import annotations

import pytest
from pymongo import TEXT
from pymongo.errors import OperationFailure


def code_of(fn) -> int:
    with pytest.raises(OperationFailure) as ei:
        fn()
    return ei.value.code


ARTICLES = [
    {"_id": 1, "subject": "coffee", "author": "xyz", "views": 50},
    {"_id": 2, "subject": "Coffee Shopping", "author": "efg", "views": 5},
    {"_id": 3, "subject": "Baking a cake", "author": "abc", "views": 90},
    {"_id": 4, "subject": "baking", "author": "xyz", "views": 100},
    {"_id": 5, "subject": "Café Con Leche", "author": "abc", "views": 200},
    {"_id": 6, "subject": "Сырники", "author": "jkl", "views": 80},
    {"_id": 7, "subject": "coffee and cream", "author": "efg", "views": 10},
    {"_id": 8, "subject": "Cafe con Leche", "author": "xyz", "views": 10},
]


@pytest.fixture
def articles(db):
    db.articles.insert_many(ARTICLES)
    assert db.articles.create_index([("subject", TEXT)]) == "subject_text"
    return db.articles


def ids(cursor) -> set:
    return {d["_id"] for d in cursor}


def test_the_index_spec_is_mongods(articles):
    spec = next(i for i in articles.list_indexes() if i["name"] == "subject_text")
    assert dict(spec) == {
        "v": 2,
        "key": {"_fts": "text", "_ftsx": 1},
        "name": "subject_text",
        "weights": {"subject": 1},
        "default_language": "english",
        "language_override": "language",
        "textIndexVersion": 3,
    }
    assert "weights" in articles.index_information()["subject_text"]


def test_manual_text_examples(articles):
    find = lambda s, **kw: ids(articles.find({"$text": {"$search": s, **kw}}))  # noqa: E731
    assert find("coffee") == {1, 2, 7}
    assert find("bake coffee cake") == {1, 2, 3, 4, 7}
    assert find('"coffee shop"') == {2}
    assert find("coffee -shop") == {1, 7}
    assert find("leche", **{"$language": "es"}) == {5, 8}
    assert find("сы́рники CAFÉS") == {5, 6, 8}
    assert find("Coffee", **{"$caseSensitive": True}) == {2}
    assert find('"Café Con Leche"', **{"$caseSensitive": True}) == {5}
    assert find("Coffee -shop", **{"$caseSensitive": True}) == {2}
    assert find("CAFÉ", **{"$diacriticSensitive": True}) == {5}
    assert find("leches -cafés", **{"$diacriticSensitive": True}) == {8}
    # Only negations, or only stop words, match nothing.
    assert find("-coffee") == set()
    assert find("the and") == set()


def test_scores_in_projections_and_sorts(articles):
    got = list(articles.find({"$text": {"$search": "cake"}}, {"score": {"$meta": "textScore"}}))
    assert got == [{"_id": 3, "subject": "Baking a cake", "author": "abc", "views": 90, "score": 0.75}]
    top = list(
        articles.find({"$text": {"$search": "coffee"}}, {"score": {"$meta": "textScore"}})
        .sort([("score", {"$meta": "textScore"})])
        .limit(2)
    )
    assert [d["_id"] for d in top] == [1, 2]
    assert [d["score"] for d in top] == [1.0, 0.75]
    # A sort by score without projecting it; the score is never a field of its own.
    plain = list(articles.find({"$text": {"$search": "coffee"}}, sort=[("score", {"$meta": "textScore"})]))
    assert [d["_id"] for d in plain] == [1, 2, 7]
    assert all("score" not in d for d in plain)
    # An inclusion projection with the score.
    got = list(articles.find({"$text": {"$search": "cake"}}, {"subject": 1, "_id": 0, "s": {"$meta": "textScore"}}))
    assert got == [{"subject": "Baking a cake", "s": 0.75}]


STORES = [
    {"_id": 1, "name": "Java Hut", "description": "Coffee and cakes"},
    {"_id": 2, "name": "Burger Buns", "description": "Gourmet hamburgers"},
    {"_id": 3, "name": "Coffee Shop", "description": "Just coffee"},
    {"_id": 4, "name": "Clothes Clothes Clothes", "description": "Discount clothing"},
    {"_id": 5, "name": "Java Shopping", "description": "Indonesian goods"},
]


def test_manual_stores_examples(db):
    db.stores.insert_many(STORES)
    assert db.stores.create_index([("name", TEXT), ("description", TEXT)]) == "name_text_description_text"
    assert ids(db.stores.find({"$text": {"$search": "java coffee shop"}})) == {1, 3, 5}
    assert ids(db.stores.find({"$text": {"$search": '"coffee shop"'}})) == {3}
    assert ids(db.stores.find({"$text": {"$search": "java shop -coffee"}})) == {5}
    ranked = list(
        db.stores.find({"$text": {"$search": "java coffee shop"}}, {"score": {"$meta": "textScore"}}).sort(
            [("score", {"$meta": "textScore"})]
        )
    )
    assert [(d["_id"], d["score"]) for d in ranked] == [(3, 2.25), (1, 1.5), (5, 1.5)]


def test_aggregation_with_scores(db):
    db.articles.insert_many(
        [
            {"_id": 1, "title": "cakes and ale"},
            {"_id": 2, "title": "more cakes"},
            {"_id": 3, "title": "bread"},
            {"_id": 4, "title": "some cakes"},
            {"_id": 5, "title": "two cakes to go"},
            {"_id": 6, "title": "pie"},
        ]
    )
    db.articles.create_index([("title", TEXT)])
    got = list(
        db.articles.aggregate(
            [
                {"$match": {"$text": {"$search": "cake"}}},
                {"$sort": {"score": {"$meta": "textScore"}}},
                {"$project": {"title": 1, "_id": 0}},
            ]
        )
    )
    assert got == [{"title": "more cakes"}, {"title": "some cakes"}, {"title": "cakes and ale"}, {"title": "two cakes to go"}]
    got = list(
        db.articles.aggregate(
            [
                {"$match": {"$text": {"$search": "cake tea"}}},
                {"$project": {"title": 1, "_id": 0, "score": {"$meta": "textScore"}}},
                {"$match": {"score": {"$gt": 0.7}}},
                {"$addFields": {"again": {"$meta": "textScore"}}},
            ]
        )
    )
    assert got == [
        {"title": "cakes and ale", "score": 0.75, "again": 0.75},
        {"title": "more cakes", "score": 1.0, "again": 1.0},
        {"title": "some cakes", "score": 1.0, "again": 1.0},
    ]
    total = list(db.articles.aggregate([{"$match": {"$text": {"$search": "cake"}}}, {"$count": "n"}]))
    assert total == [{"n": 4}]


def test_weights_languages_and_wildcard(db):
    db.quotes.insert_many(
        [
            {"_id": 1, "title": "coffee", "body": "tea"},
            {"_id": 2, "title": "tea", "body": "coffee"},
            {"_id": 3, "title": "x", "body": "los cafés", "idioma": "spanish"},
        ]
    )
    db.quotes.create_index(
        [("title", TEXT), ("body", TEXT)],
        weights={"title": 10},
        default_language="english",
        language_override="idioma",
        name="q",
    )
    spec = next(i for i in db.quotes.list_indexes() if i["name"] == "q")
    assert spec["weights"] == {"body": 1, "title": 10}
    assert spec["language_override"] == "idioma"
    ranked = list(db.quotes.find({"$text": {"$search": "coffee"}}, {"s": {"$meta": "textScore"}}).sort([("s", {"$meta": "textScore"})]))
    assert [(d["_id"], d["s"]) for d in ranked] == [(1, 10.0), (2, 1.0)]
    # Spanish stemming and stop words for the document whose override says so.
    assert ids(db.quotes.find({"$text": {"$search": "CAFÉS", "$language": "es"}})) == {3}
    assert ids(db.quotes.find({"$text": {"$search": "los", "$language": "spanish"}})) == set()
    assert code_of(lambda: db.quotes.insert_one({"title": "x", "idioma": "klingon"})) == 17262

    db.anything.insert_many([{"_id": 1, "a": {"b": "Deep coffee"}}, {"_id": 2, "c": ["tea", "more coffee"]}, {"_id": 3, "d": 1}])
    assert db.anything.create_index([("$**", TEXT)]) == "$**_text"
    assert ids(db.anything.find({"$text": {"$search": "coffee"}})) == {1, 2}


def test_compound_text_index_needs_prefix_equality(db):
    db.posts.insert_many([{"_id": 1, "site": "a", "body": "coffee"}, {"_id": 2, "site": "b", "body": "coffee"}])
    db.posts.create_index([("site", 1), ("body", TEXT)])
    spec = next(i for i in db.posts.list_indexes() if i["name"] == "site_1_body_text")
    assert spec["key"] == {"site": 1, "_fts": "text", "_ftsx": 1}
    assert ids(db.posts.find({"site": "b", "$text": {"$search": "coffee"}})) == {2}
    assert code_of(lambda: list(db.posts.find({"$text": {"$search": "coffee"}}))) == 2


def test_errors_as_mongod(db, articles):
    # No text index.
    db.plain.insert_one({"a": "coffee"})
    assert code_of(lambda: list(db.plain.find({"$text": {"$search": "coffee"}}))) == 27
    # One text index per collection.
    assert code_of(lambda: articles.create_index([("author", TEXT)])) == 85
    assert code_of(lambda: articles.create_index([("views", 1), ("author", TEXT)])) == 67
    # Bad $text arguments, two $text, $text out of place.
    assert code_of(lambda: list(articles.find({"$text": {"$search": 1}}))) == 14
    assert code_of(lambda: list(articles.find({"$text": {"$search": "a", "$x": 1}}))) == 2
    assert code_of(lambda: list(articles.find({"$text": {"$search": "a", "$language": "klingon"}}))) == 2
    two = {"$and": [{"$text": {"$search": "a"}}, {"$text": {"$search": "b"}}]}
    assert code_of(lambda: list(articles.find(two))) == 2
    later = [{"$match": {"author": "xyz"}}, {"$match": {"$text": {"$search": "coffee"}}}]
    assert code_of(lambda: list(articles.aggregate(later))) == 17313
    # Change events are in no text index.
    assert code_of(lambda: articles.watch([{"$match": {"$text": {"$search": "coffee"}}}])) == 224
    # The score needs a $text query.
    assert code_of(lambda: list(articles.find({}, {"s": {"$meta": "textScore"}}))) == 40218
    assert code_of(lambda: list(articles.find({}, sort=[("s", {"$meta": "textScore"})]))) == 40218
    assert code_of(lambda: list(articles.aggregate([{"$project": {"s": {"$meta": "textScore"}}}]))) == 40218
    # Index options as fixSpec checks them.
    assert code_of(lambda: db.other.create_index([("a", TEXT)], default_language="klingon")) == 17264
    assert code_of(lambda: db.other.create_index([("a", TEXT), ("b", 1), ("c", TEXT)])) == 17389


def test_explain_shows_the_text_stages(db, articles):
    plan = db.command(
        "explain", {"find": "articles", "filter": {"$text": {"$search": "coffee -shop"}}}, verbosity="queryPlanner"
    )["queryPlanner"]["winningPlan"]
    assert plan["stage"] == "TEXT_MATCH"
    assert plan["indexName"] == "subject_text"
    assert plan["parsedTextQuery"] == {"terms": ["coffe"], "negatedTerms": ["shop"], "phrases": [], "negatedPhrases": []}
    assert plan["inputStage"]["stage"] == "FETCH"
    assert plan["inputStage"]["inputStage"]["stage"] == "TEXT_OR"
    assert plan["inputStage"]["inputStage"]["inputStage"]["stage"] == "IXSCAN"


def test_updates_and_deletes_by_text(articles):
    assert articles.update_many({"$text": {"$search": "coffee"}}, {"$inc": {"views": 1}}).modified_count == 3
    assert articles.find_one({"_id": 1})["views"] == 51
    assert articles.delete_many({"$text": {"$search": "baking"}}).deleted_count == 2
    assert articles.count_documents({"$text": {"$search": "cake"}}) == 0
    # The index follows the writes.
    articles.insert_one({"_id": 9, "subject": "cake shop"})
    assert ids(articles.find({"$text": {"$search": "cake"}})) == {9}
    articles.update_one({"_id": 9}, {"$set": {"subject": "bread"}})
    assert ids(articles.find({"$text": {"$search": "cake"}})) == set()
    assert articles.database.command("validate", "articles")["valid"] is True
