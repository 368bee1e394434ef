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
