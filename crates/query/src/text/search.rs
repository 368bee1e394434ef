//! `$text` queries (mongod's `TextMatchExpression` and `FTSQueryImpl`): the operator's
//! arguments, the words and phrases of `$search`, and the match of a document against
//! them (mongod's `FTSMatcher`).

use std::collections::BTreeSet;

use bson::{doc, Bson, Document};
use eddy_codes::MongoError;

use super::spec::TextSpec;
use super::tokenize::{fold, tokens, TokenOptions};
use super::Language;

/// The arguments of `{$text: {$search, $language, $caseSensitive, $diacriticSensitive}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct TextQuery {
    pub search: String,
    pub language: Option<String>,
    pub case_sensitive: bool,
    pub diacritic_sensitive: bool,
}

impl TextQuery {
    /// Parses the operator's argument with mongod's errors.
    pub fn parse(value: &Bson) -> Result<TextQuery, MongoError> {
        let Bson::Document(d) = value else {
            return Err(MongoError::bad_value("$text expects an object"));
        };
        let mut expected = 1;
        let search = match d.get("$search") {
            Some(Bson::String(s)) => s.clone(),
            _ => return Err(MongoError::type_mismatch("$search requires a string value")),
        };
        let language = match d.get("$language") {
            None => None,
            Some(Bson::String(s)) => {
                expected += 1;
                Some(s.clone())
            }
            Some(_) => {
                return Err(MongoError::type_mismatch(
                    "$language requires a string value",
                ))
            }
        };
        let mut flag = |name: &str| -> Result<bool, MongoError> {
            match d.get(name) {
                None => Ok(false),
                Some(Bson::Boolean(b)) => {
                    expected += 1;
                    Ok(*b)
                }
                Some(_) => Err(MongoError::type_mismatch(format!(
                    "{name} requires a boolean value"
                ))),
            }
        };
        let case_sensitive = flag("$caseSensitive")?;
        let diacritic_sensitive = flag("$diacriticSensitive")?;
        if d.len() != expected {
            return Err(MongoError::bad_value("extra fields in $text"));
        }
        Ok(TextQuery {
            search,
            language,
            case_sensitive,
            diacritic_sensitive,
        })
    }

    /// The query's language: `$language`, else the index's default.
    fn language(&self, spec: &TextSpec) -> Result<Language, MongoError> {
        match &self.language {
            None => Ok(spec.default_language()),
            Some(name) => Language::parse(name).ok_or_else(|| {
                MongoError::bad_value(format!(
                    "unsupported language: \"{name}\" for text index version 3"
                ))
            }),
        }
    }

    /// Splits `$search` into words and phrases for the index `spec` (mongod's
    /// `FTSQueryImpl::parse`).
    pub fn resolve(&self, spec: &TextSpec) -> Result<TextSearch, MongoError> {
        let language = self.language(spec)?;
        let (positive, negative, phrases, negated_phrases) = split_search(&self.search);
        let index_options = TokenOptions {
            filter_stop_words: true,
            ..TokenOptions::default()
        };
        let match_options = TokenOptions {
            filter_stop_words: true,
            case_sensitive: self.case_sensitive,
            diacritic_sensitive: self.diacritic_sensitive,
        };
        let set = |s: &str, o| tokens(s, language, o).into_iter().collect::<BTreeSet<_>>();
        Ok(TextSearch {
            language,
            case_sensitive: self.case_sensitive,
            diacritic_sensitive: self.diacritic_sensitive,
            terms_for_bounds: set(&positive, index_options).into_iter().collect(),
            terms: set(&positive, match_options).into_iter().collect(),
            negated_terms: set(&negative, match_options).into_iter().collect(),
            phrases,
            negated_phrases,
        })
    }
}

/// `(positive words, negated words, phrases, negated phrases)` of a search string:
/// `"` opens and closes a phrase, a `-` after white space (or at the start) negates the
/// word or phrase it is attached to, words of a positive phrase are also words.
fn split_search(query: &str) -> (String, String, Vec<String>, Vec<String>) {
    let mut positive = String::new();
    let mut negative = String::new();
    let mut phrases = Vec::new();
    let mut negated_phrases = Vec::new();
    let mut in_negation = false;
    let mut in_phrase = false;
    let mut quote = 0;
    let mut previous_white = true;
    let bytes = query.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C => {
                previous_white = true;
                i += 1;
            }
            b'-' | b'"' => {
                if c == b'-' {
                    if !in_phrase && previous_white {
                        in_negation = true;
                    }
                } else if in_phrase {
                    let phrase = query[quote + 1..i].to_owned();
                    if in_negation {
                        negated_phrases.push(phrase);
                    } else {
                        phrases.push(phrase);
                    }
                    in_phrase = false;
                } else {
                    in_phrase = true;
                    if in_negation && previous_white {
                        in_negation = false;
                    }
                    quote = i;
                }
                previous_white = false;
                i += 1;
            }
            _ => {
                let start = i;
                while i < bytes.len()
                    && !matches!(
                        bytes[i],
                        b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C | b'-' | b'"'
                    )
                {
                    i += 1;
                }
                let word = &query[start..i];
                if !(in_phrase && in_negation) {
                    if in_negation && previous_white {
                        in_negation = false;
                    }
                    let target = if in_negation {
                        &mut negative
                    } else {
                        &mut positive
                    };
                    target.push_str(word);
                    target.push(' ');
                }
                previous_white = false;
            }
        }
    }
    (positive, negative, phrases, negated_phrases)
}

/// A `$text` query resolved against its index: what to look up and what to check.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSearch {
    pub language: Language,
    pub case_sensitive: bool,
    pub diacritic_sensitive: bool,
    /// The index words looked up (lower-cased, stemmed, no diacritics), sorted.
    pub terms_for_bounds: Vec<String>,
    /// The positive and negated words as the match compares them.
    pub terms: Vec<String>,
    pub negated_terms: Vec<String>,
    pub phrases: Vec<String>,
    pub negated_phrases: Vec<String>,
}

impl TextSearch {
    /// explain's `parsedTextQuery`.
    pub fn explain(&self) -> Document {
        doc! {
            "terms": self.terms.clone(),
            "negatedTerms": self.negated_terms.clone(),
            "phrases": self.phrases.clone(),
            "negatedPhrases": self.negated_phrases.clone(),
        }
    }

    /// Whether a document the index found for some word matches the whole query
    /// (mongod's `FTSMatcher::matches`): a positive word present under the query's case
    /// and diacritic sensitivity, no negated word, every phrase and no negated phrase.
    pub fn matches(&self, spec: &TextSpec, doc: &Document) -> Result<bool, MongoError> {
        let options = TokenOptions {
            filter_stop_words: true,
            case_sensitive: self.case_sensitive,
            diacritic_sensitive: self.diacritic_sensitive,
        };
        let check_positive = self.case_sensitive || self.diacritic_sensitive;
        let mut has_positive = false;
        let mut has_negative = false;
        let mut phrase_found = vec![false; self.phrases.len()];
        let mut negated_phrase_found = false;
        let fold_all = |phrases: &[String]| -> Vec<String> {
            phrases
                .iter()
                .map(|p| {
                    fold(
                        p,
                        self.language,
                        self.case_sensitive,
                        self.diacritic_sensitive,
                    )
                })
                .collect()
        };
        let folded_phrases = fold_all(&self.phrases);
        let folded_negated = fold_all(&self.negated_phrases);
        spec.for_each_string(doc, &mut |raw, _, language| {
            if check_positive || !self.negated_terms.is_empty() {
                for w in tokens(raw, language, options) {
                    if check_positive && self.terms.binary_search(&w).is_ok() {
                        has_positive = true;
                    }
                    if self.negated_terms.binary_search(&w).is_ok() {
                        has_negative = true;
                    }
                }
            }
            if !folded_phrases.is_empty() || !folded_negated.is_empty() {
                let hay = fold(raw, language, self.case_sensitive, self.diacritic_sensitive);
                for (i, p) in folded_phrases.iter().enumerate() {
                    if hay.contains(p.as_str()) {
                        phrase_found[i] = true;
                    }
                }
                if folded_negated.iter().any(|p| hay.contains(p.as_str())) {
                    negated_phrase_found = true;
                }
            }
        })?;
        Ok((has_positive || !check_positive)
            && !has_negative
            && phrase_found.iter().all(|f| *f)
            && !negated_phrase_found)
    }
}

/// The text score of a document: the sum of its index scores for the looked-up words.
pub fn score(spec: &TextSpec, search: &TextSearch, doc: &Document) -> Result<f64, MongoError> {
    let scores = spec.term_scores(doc)?;
    Ok(search
        .terms_for_bounds
        .iter()
        .filter_map(|t| scores.get(t))
        .sum())
}

#[cfg(test)]
mod tests {
    use bson::doc;

    use super::*;
    use crate::text::spec::fix_spec;

    fn spec() -> TextSpec {
        TextSpec::from_index_spec(&fix_spec(&doc! {"key": {"subject": "text"}}).expect("spec"))
            .expect("spec")
    }

    fn search(q: Document) -> TextSearch {
        TextQuery::parse(&Bson::Document(q))
            .expect("parse")
            .resolve(&spec())
            .expect("resolve")
    }

    #[test]
    fn parses_with_mongods_errors() {
        let e = TextQuery::parse(&Bson::Int32(1)).expect_err("object");
        assert_eq!(e.code, 2);
        let e = TextQuery::parse(&Bson::Document(doc! {"$search": 1})).expect_err("string");
        assert_eq!(e.code, 14);
        let e =
            TextQuery::parse(&Bson::Document(doc! {"$search": "a", "x": 1})).expect_err("extra");
        assert_eq!(e.message, "extra fields in $text");
    }

    #[test]
    fn splits_words_phrases_and_negations() {
        let s =
            search(doc! {"$search": "coffee -shop \"cafe con leche\" -\"bad coffee\" bake-off"});
        assert_eq!(s.terms_for_bounds, ["bake", "cafe", "coffe", "con", "lech"]);
        assert_eq!(s.negated_terms, ["shop"]);
        assert_eq!(s.phrases, ["cafe con leche"]);
        assert_eq!(s.negated_phrases, ["bad coffee"]);
        let s = search(doc! {"$search": "-foo-bar"});
        assert_eq!(s.negated_terms, ["bar", "foo"]);
        assert!(s.terms_for_bounds.is_empty());
    }

    #[test]
    fn matches_phrases_negations_and_case() {
        let sp = spec();
        let d = doc! {"subject": "Coffee and cakes"};
        assert!(search(doc! {"$search": "coffee"})
            .matches(&sp, &d)
            .expect("m"));
        assert!(!search(doc! {"$search": "coffee -cakes"})
            .matches(&sp, &d)
            .expect("m"));
        assert!(search(doc! {"$search": "\"coffee and\""})
            .matches(&sp, &d)
            .expect("m"));
        assert!(!search(doc! {"$search": "\"coffee cakes\""})
            .matches(&sp, &d)
            .expect("m"));
        assert!(!search(doc! {"$search": "coffee", "$caseSensitive": true})
            .matches(&sp, &d)
            .expect("m"));
        assert!(search(doc! {"$search": "Coffee", "$caseSensitive": true})
            .matches(&sp, &d)
            .expect("m"));
    }
}
