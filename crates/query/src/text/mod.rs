//! Text search (mongod 7.0's `fts`, `textIndexVersion` 3): languages with their
//! stemmers and stop words, the tokenizer, text index specifications and document
//! scores, and `$text` queries with their match.
//!
//! The engine keeps a text index as a table of `(prefix fields, word, score, suffix
//! fields, _id)` keys (`eddy_engine::index`) and answers `$text` by looking up the
//! query's words there; this module says which words, which scores, and whether a
//! document found that way matches.

mod language;
mod search;
mod spec;
mod tokenize;

pub use language::Language;
pub use search::{score, TextQuery, TextSearch};
pub use spec::{fix_spec, is_text_key, TextSpec, TEXT_INDEX_VERSION};
pub use tokenize::{fold, strip_diacritics, tokens, TokenOptions};

/// The field under which a document carries its text score between the read and the
/// reply (mongod keeps it as document metadata). No stored or client document can have
/// it: BSON field names cannot hold a NUL byte. Readers strip it before replying.
pub const TEXT_SCORE_FIELD: &str = "\u{0}textScore";

/// Removes the text score field from `doc` and everything nested in it.
pub fn strip_score(doc: &mut bson::Document) {
    doc.remove(TEXT_SCORE_FIELD);
    for (_, v) in doc.iter_mut() {
        strip_value(v);
    }
}

fn strip_value(v: &mut bson::Bson) {
    match v {
        bson::Bson::Document(d) => strip_score(d),
        bson::Bson::Array(items) => items.iter_mut().for_each(strip_value),
        _ => {}
    }
}
