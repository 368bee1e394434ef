//! Projections with aggregation expressions. They need the real `crate::expr`, which
//! lands from another branch; un-ignore them after the merge.

use bson::{doc, Bson, Document};

use super::Projection;
use crate::expr::Env;

fn project(spec: Document, d: Document) -> Document {
    Projection::parse(&spec)
        .unwrap_or_else(|e| panic!("parse {spec:?}: {e}"))
        .apply(&d, None)
        .unwrap_or_else(|e| panic!("apply {spec:?}: {e}"))
}

#[test]
fn expression_fields() {
    let d = doc! {"_id": 1, "a": 1, "b": 2, "s": [1, 2, 3]};
    let cases: Vec<(Document, Document)> = vec![
        (
            doc! {"total": {"$add": ["$a", "$b"]}},
            doc! {"_id": 1, "total": 3},
        ),
        (doc! {"x": "$a"}, doc! {"_id": 1, "x": 1}),
        (doc! {"x": "$missing"}, doc! {"_id": 1}),
        (doc! {"_id": 0, "x": ["$a", "$b"]}, doc! {"x": [1, 2]}),
        (doc! {"b": 1, "x": "$a"}, doc! {"_id": 1, "b": 2, "x": 1}),
        (doc! {"y.z": "$b"}, doc! {"_id": 1, "y": {"z": 2}}),
        // $slice that is not the find form is the expression.
        (doc! {"_id": 0, "t": {"$slice": ["$s", 1]}}, doc! {"t": [1]}),
        // An expression makes the projection an inclusion; a later 0 is refused.
        (doc! {"_id": 0, "c": {"$literal": 1}}, doc! {"c": 1}),
    ];
    for (spec, want) in cases {
        assert_eq!(project(spec.clone(), d.clone()), want, "{spec:?}");
    }
    let e = Projection::parse(&doc! {"a": {"$add": [1]}, "b": 0}).expect_err("mixed");
    assert_eq!(e.code, 31254);
    // An operator the expression module does not know: mongod's projection error.
    let e = Projection::parse(&doc! {"a": {"$foo": 1}}).expect_err("unknown");
    assert_eq!(
        (e.code, e.message.as_str()),
        (31325, "Unknown expression $foo")
    );
    // In $project, $slice is only the expression.
    let p = Projection::parse_aggregation(&doc! {"t": {"$slice": ["$s", -1]}}).expect("parses");
    assert_eq!(
        p.apply(&d, None).expect("applies"),
        doc! {"_id": 1, "t": [3]}
    );
    assert!(Projection::parse_aggregation(&doc! {"t": {"$slice": 1}}).is_err());
}

#[test]
fn env_is_shared() {
    let p = Projection::parse(&doc! {"_id": 0, "now": "$$NOW"}).expect("parses");
    let env = Env::new();
    let a = p.apply_with_env(&doc! {}, None, &env).expect("applies");
    let b = p
        .apply_with_env(&doc! {"x": 1}, None, &env)
        .expect("applies");
    assert_eq!(a, b);
    assert_eq!(a.get("now"), Some(&Bson::DateTime(env.now)));
}
