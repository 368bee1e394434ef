//! Text index specifications (mongod's `FTSSpec`, `textIndexVersion` 3): the shape
//! `createIndexes` stores and `listIndexes` shows, and the words and scores an index
//! holds for a document.

use std::collections::BTreeMap;

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use super::tokenize::{tokens, TokenOptions};
use super::Language;

/// The text index version Eddy builds (mongod 7.0's default and newest).
pub const TEXT_INDEX_VERSION: i32 = 3;

/// mongod's `MAX_WORD_WEIGHT`: weights must be below it.
const MAX_WORD_WEIGHT: f64 = 100_000.0;

/// A text index, read from its stored specification.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSpec {
    /// Field path -> weight (the wildcard `$**` is not in it).
    weights: BTreeMap<String, f64>,
    /// `{"$**": "text"}`: every string of the document is indexed.
    wildcard: bool,
    default_language: Language,
    language_override: String,
    /// Key fields before and after the text part, with their key pattern values.
    pub prefix: Vec<(String, Bson)>,
    pub suffix: Vec<(String, Bson)>,
}

/// Whether a key pattern (as given or as stored) is a text index's.
pub fn is_text_key(key: &Document) -> bool {
    key.iter()
        .any(|(k, v)| k == "_fts" || matches!(v, Bson::String(s) if s == "text"))
}

fn fail(code: i32, msg: impl Into<String>) -> MongoError {
    MongoError::location(code, msg)
}

fn number(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(d) => Some(*d),
        Bson::Decimal128(d) => d.to_string().parse().ok(),
        _ => None,
    }
}

fn validate_override(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('$') && !s.contains('.')
}

/// mongod's `FTSSpec::fixSpec`: the text index spec as stored, from a spec whose `key`,
/// `name` and `v` are already in place. The key becomes `{<prefix>, _fts: "text", _ftsx:
/// 1, <suffix>}`, the text fields go to `weights` (sorted by path), and
/// `default_language`, `language_override` and `textIndexVersion` are filled in.
pub fn fix_spec(spec: &Document) -> Result<Document, MongoError> {
    let key = spec.get_document("key").cloned().unwrap_or_default();
    let mut weights: BTreeMap<String, Bson> = BTreeMap::new();
    let mut fixed_key = Document::new();
    let mut added_fts = false;
    // Where the key is: 0 before the text fields, 1 in them, 2 after.
    let mut part = 0;
    for (field, value) in &key {
        let is_text =
            field == "_fts" || field == "_ftsx" || matches!(value, Bson::String(s) if s == "text");
        if is_text {
            if part == 2 {
                return Err(fail(17389, "'text' fields in index must all be adjacent"));
            }
            part = 1;
        } else if part == 1 {
            part = 2;
        }
        match field.as_str() {
            "_fts" => {
                if !matches!(value, Bson::String(s) if s == "text") {
                    return Err(fail(17271, "expecting _fts:\"text\""));
                }
                added_fts = true;
                fixed_key.insert("_fts", "text");
            }
            "_ftsx" => {
                if number(value) != Some(1.0) {
                    return Err(fail(17272, "expecting _ftsx:1"));
                }
                fixed_key.insert("_ftsx", 1);
            }
            _ if is_text => {
                if !added_fts {
                    fixed_key.insert("_fts", "text");
                    fixed_key.insert("_ftsx", 1);
                    added_fts = true;
                }
                weights.insert(field.clone(), Bson::Int32(1));
            }
            _ => {
                if !matches!(number(value), Some(n) if n.trunc() == 1.0 || n.trunc() == -1.0) {
                    return Err(fail(
                        17273,
                        "expected value 1 or -1 for non-text key in compound index",
                    ));
                }
                fixed_key.insert(field.clone(), value.clone());
            }
        }
    }
    match spec.get("weights") {
        Some(Bson::Document(w)) => {
            for (field, v) in w {
                let Some(n) = number(v) else {
                    return Err(fail(17283, "weight for text index needs numeric type"));
                };
                let stored = if n.fract() == 0.0 && n.abs() < f64::from(i32::MAX) {
                    Bson::Int32(n as i32)
                } else {
                    Bson::Double(n)
                };
                weights.insert(field.clone(), stored);
            }
        }
        Some(Bson::String(s)) if s == "$**" => {
            weights.insert("$**".into(), Bson::Int32(1));
        }
        Some(_) => return Err(fail(17284, "text index option 'weights' must be an object")),
        None => {}
    }
    let mut weights_doc = Document::new();
    for (field, w) in &weights {
        let n = number(w).unwrap_or(0.0);
        if n <= 0.0 || n >= MAX_WORD_WEIGHT {
            return Err(fail(16674, "score for word too high"));
        }
        if field != "$**" {
            if field.is_empty() {
                return Err(fail(17294, "weight cannot be on an empty field"));
            }
            for part in field.split('.') {
                if part.is_empty() {
                    return Err(fail(17291, "weight cannot have empty path component"));
                }
                if part.starts_with('$') {
                    return Err(fail(
                        17292,
                        "weight cannot have path component with $ prefix",
                    ));
                }
            }
        }
        weights_doc.insert(field.clone(), w.clone());
    }
    let default_language = match spec.get("default_language") {
        None => "english".to_owned(),
        Some(Bson::String(s)) => {
            if Language::parse(s).is_none() {
                return Err(fail(17264, "default_language is not valid"));
            }
            s.clone()
        }
        Some(_) => return Err(fail(17263, "default_language needs a string type")),
    };
    let language_override = match spec.get("language_override") {
        None => "language".to_owned(),
        Some(Bson::String(s)) if validate_override(s) => s.clone(),
        Some(_) => return Err(fail(17136, "language_override is not valid")),
    };
    if let Some(v) = spec.get("textIndexVersion") {
        let Some(n) = number(v) else {
            return Err(fail(
                17293,
                "text index option 'textIndexVersion' must be a number",
            ));
        };
        if n as i32 != TEXT_INDEX_VERSION {
            return Err(MongoError::new(
                ErrorCode::CannotCreateIndex,
                format!("Eddy builds textIndexVersion {TEXT_INDEX_VERSION} only, not {n}"),
            ));
        }
    }
    let mut out = Document::new();
    let (mut put_weights, mut put_language, mut put_override) = (true, true, true);
    for (k, v) in spec {
        match k.as_str() {
            "key" => {
                out.insert("key", fixed_key.clone());
            }
            "weights" => {
                out.insert("weights", weights_doc.clone());
                put_weights = false;
            }
            "default_language" => {
                out.insert("default_language", default_language.clone());
                put_language = false;
            }
            "language_override" => {
                out.insert("language_override", language_override.clone());
                put_override = false;
            }
            "textIndexVersion" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if put_weights {
        out.insert("weights", weights_doc);
    }
    if put_language {
        out.insert("default_language", default_language);
    }
    if put_override {
        out.insert("language_override", language_override);
    }
    out.insert("textIndexVersion", TEXT_INDEX_VERSION);
    Ok(out)
}

/// The document-level errors of indexing (mongod's `_getLanguageToUseV2`).
fn document_language(
    doc: &Document,
    field: &str,
    current: Language,
) -> Result<Language, MongoError> {
    match doc.get(field) {
        None => Ok(current),
        Some(Bson::String(s)) => Language::parse(s)
            .ok_or_else(|| fail(17262, format!("language override unsupported: {s}"))),
        Some(_) => Err(fail(
            17261,
            "found language override field in document with non-string type",
        )),
    }
}

impl TextSpec {
    /// Reads a stored (fixed) text index spec.
    pub fn from_index_spec(spec: &Document) -> Result<TextSpec, MongoError> {
        let mut weights = BTreeMap::new();
        let mut wildcard = false;
        if let Ok(w) = spec.get_document("weights") {
            for (field, v) in w {
                if field == "$**" {
                    wildcard = true;
                } else {
                    weights.insert(field.clone(), number(v).unwrap_or(1.0));
                }
            }
        }
        let default_language = spec
            .get_str("default_language")
            .ok()
            .and_then(Language::parse)
            .unwrap_or(Language::English);
        let language_override = spec
            .get_str("language_override")
            .unwrap_or("language")
            .to_owned();
        let mut prefix = Vec::new();
        let mut suffix = Vec::new();
        let mut passed = false;
        for (k, v) in spec
            .get_document("key")
            .map(|d| d.iter())
            .into_iter()
            .flatten()
        {
            if k == "_fts" || k == "_ftsx" {
                passed = true;
            } else if passed {
                suffix.push((k.clone(), v.clone()));
            } else {
                prefix.push((k.clone(), v.clone()));
            }
        }
        Ok(TextSpec {
            weights,
            wildcard,
            default_language,
            language_override,
            prefix,
            suffix,
        })
    }

    /// The index's `default_language`.
    pub fn default_language(&self) -> Language {
        self.default_language
    }

    /// The weight of the strings at `path`, if they are indexed. A wildcard index gives
    /// a path without a weight of its own the weight of the first weighted path after it
    /// in byte order (1 if there is none): mongod's `FTSElementIterator` reads the weight
    /// map's lower bound, and so does Eddy, to score alike.
    fn weight(&self, path: &str) -> Option<f64> {
        match self.weights.get(path) {
            Some(w) => Some(*w),
            None if self.wildcard => Some(
                self.weights
                    .range::<str, _>((std::ops::Bound::Included(path), std::ops::Bound::Unbounded))
                    .next()
                    .map_or(1.0, |(_, w)| *w),
            ),
            None => None,
        }
    }

    /// Whether some indexed path lies below `path`.
    fn descends(&self, path: &str) -> bool {
        self.wildcard
            || self.weights.keys().any(|k| {
                k.len() > path.len() && k.starts_with(path) && k.as_bytes()[path.len()] == b'.'
            })
    }

    /// Calls `f(text, weight, language)` for every indexed string of `doc` (mongod's
    /// `FTSElementIterator`): strings at a weighted path (every path for a wildcard
    /// index), array elements each on their own, sub-documents with their own
    /// language override.
    pub fn for_each_string(
        &self,
        doc: &Document,
        f: &mut dyn FnMut(&str, f64, Language),
    ) -> Result<(), MongoError> {
        let language = document_language(doc, &self.language_override, self.default_language)?;
        self.walk(doc, "", language, f)
    }

    fn walk(
        &self,
        doc: &Document,
        prefix: &str,
        language: Language,
        f: &mut dyn FnMut(&str, f64, Language),
    ) -> Result<(), MongoError> {
        for (k, v) in doc {
            if self.wildcard && *k == self.language_override {
                // A wildcard index does not index the language override itself.
                continue;
            }
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            self.value(v, &path, language, f)?;
        }
        Ok(())
    }

    fn value(
        &self,
        v: &Bson,
        path: &str,
        language: Language,
        f: &mut dyn FnMut(&str, f64, Language),
    ) -> Result<(), MongoError> {
        match v {
            Bson::String(s) => {
                if let Some(w) = self.weight(path) {
                    f(s, w, language);
                }
            }
            Bson::Document(sub) if self.descends(path) => {
                let language = document_language(sub, &self.language_override, language)?;
                self.walk(sub, path, language, f)?;
            }
            Bson::Array(items) => {
                // Arrays nested in arrays are indexed by wildcard indexes only.
                for item in items {
                    match item {
                        Bson::String(_) | Bson::Document(_) => {
                            self.value(item, path, language, f)?
                        }
                        Bson::Array(_) if self.wildcard => self.value(item, path, language, f)?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The index's words for `doc` and their scores (mongod's `scoreDocument` with
    /// `_scoreStringV2`): for each string, a word seen `n` times among its `total`
    /// words scores `weight * freq * (0.5 * n / total + 0.5)`, where `freq` sums 1,
    /// 1/2, 1/4, ... over the occurrences, times 1.1 when the word is the whole string;
    /// scores add up across strings.
    pub fn term_scores(&self, doc: &Document) -> Result<BTreeMap<String, f64>, MongoError> {
        let mut scores: BTreeMap<String, f64> = BTreeMap::new();
        let options = TokenOptions {
            filter_stop_words: true,
            ..TokenOptions::default()
        };
        self.for_each_string(doc, &mut |raw, weight, language| {
            let words = tokens(raw, language, options);
            let total = words.len() as f64;
            // term -> (count, freq, exp)
            let mut seen: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
            for w in &words {
                let e = seen.entry(w.as_str()).or_insert((0.0, 0.0, 0.0));
                e.2 = if e.2 == 0.0 { 1.0 } else { e.2 * 2.0 };
                e.0 += 1.0;
                e.1 += 1.0 / e.2;
            }
            for (term, (count, freq, _)) in seen {
                let coeff = 0.5 * count / total + 0.5;
                let adjustment = if raw.len() == term.len() && raw.eq_ignore_ascii_case(term) {
                    1.1
                } else {
                    1.0
                };
                *scores.entry(term.to_owned()).or_insert(0.0) += weight * freq * coeff * adjustment;
            }
        })?;
        Ok(scores)
    }
}

#[cfg(test)]
mod tests {
    use bson::doc;

    use super::*;

    #[test]
    fn fix_spec_shapes_the_spec_as_mongod() {
        let fixed = fix_spec(&doc! {"v": 2, "key": {"subject": "text", "content": "text"}, "name": "subject_text_content_text"}).expect("spec");
        assert_eq!(
            fixed,
            doc! {"v": 2, "key": {"_fts": "text", "_ftsx": 1}, "name": "subject_text_content_text",
            "weights": {"content": 1, "subject": 1}, "default_language": "english",
            "language_override": "language", "textIndexVersion": 3}
        );
        let fixed = fix_spec(&doc! {"key": {"a": 1, "t": "text", "b": -1}, "weights": {"t": 5}, "default_language": "spanish"}).expect("spec");
        assert_eq!(
            fixed.get_document("key").expect("key"),
            &doc! {"a": 1, "_fts": "text", "_ftsx": 1, "b": -1}
        );
        assert_eq!(fixed.get_document("weights").expect("w"), &doc! {"t": 5});
        let err =
            fix_spec(&doc! {"key": {"a": "text", "b": 1, "c": "text"}}).expect_err("adjacent");
        assert_eq!(err.code, 17389);
        let err = fix_spec(&doc! {"key": {"a": "text"}, "default_language": "klingon"})
            .expect_err("language");
        assert_eq!(err.code, 17264);
        let err =
            fix_spec(&doc! {"key": {"a": "text"}, "weights": {"a": 100000}}).expect_err("weight");
        assert_eq!(err.code, 16674);
    }

    #[test]
    fn scores_follow_mongods_formula() {
        let spec =
            TextSpec::from_index_spec(&fix_spec(&doc! {"key": {"t": "text"}}).expect("spec"))
                .expect("spec");
        let s = spec
            .term_scores(&doc! {"t": "spam eggs and spam"})
            .expect("scores");
        // spam: 2 of 3 words, freq 1 + 1/2: 1.5 * (0.5 * 2/3 + 0.5) = 1.25
        assert!((s["spam"] - 1.25).abs() < 1e-12);
        assert!((s["egg"] - 1.0 * (0.5 / 3.0 + 0.5)).abs() < 1e-12);
        let wild = TextSpec::from_index_spec(
            &fix_spec(&doc! {"key": {"$**": "text"}, "weights": {"m": 5}}).expect("spec"),
        )
        .expect("spec");
        let s = wild
            .term_scores(&doc! {"a": "apple", "z": "zebra", "m": "mango", "language": "english"})
            .expect("scores");
        // `a` sorts before the weighted `m`, so it takes its weight; `z` after it takes 1.
        assert!((s["appl"] - 5.0).abs() < 1e-12);
        assert!((s["zebra"] - 1.1).abs() < 1e-12);
        assert!((s["mango"] - 5.5).abs() < 1e-12);
        assert!(!s.contains_key("english"));
        let s = spec.term_scores(&doc! {"t": "spam"}).expect("scores");
        assert!((s["spam"] - 1.1).abs() < 1e-12);
        let err = spec
            .term_scores(&doc! {"t": "x", "language": "klingon"})
            .expect_err("language");
        assert_eq!(err.code, 17262);
    }
}
