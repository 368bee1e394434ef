//! Collations: language-aware string comparison, as mongod's ICU collator does it.
//!
//! A command's `collation` document (`{locale: "en_US", strength: 2, ...}`) is parsed
//! into a [`Collation`] that compares strings with ICU4X's implementation of the Unicode
//! Collation Algorithm and CLDR's locale tailorings (the same rules and data mongod gets
//! from ICU). `{locale: "simple"}` is no collation at all: plain byte order, which is
//! what [`Collation::parse`] returns `None` for.
//!
//! Only strings (and symbols) compare through a collation; field names, and strings
//! inside other types (regex patterns, code), keep byte order, as in mongod.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use icu_collator::options::{AlternateHandling, CaseLevel, CollatorOptions, MaxVariable, Strength};
use icu_collator::preferences::{CollationCaseFirst, CollationNumericOrdering};
use icu_collator::{Collator, CollatorBorrowed, CollatorPreferences};
use icu_locale_core::Locale;

use crate::util::type_name;

/// A non-simple collation, ready to compare strings.
pub struct Collation {
    /// The specification with every field filled in, as mongod reports it back.
    spec: Document,
    collator: CollatorBorrowed<'static>,
}

impl fmt::Debug for Collation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collation")
            .field("spec", &self.spec)
            .finish()
    }
}

/// The ICU strength of mongod's `strength` 1 to 5.
fn strength(n: i64) -> Option<Strength> {
    Some(match n {
        1 => Strength::Primary,
        2 => Strength::Secondary,
        3 => Strength::Tertiary,
        4 => Strength::Quaternary,
        5 => Strength::Identical,
        _ => return None,
    })
}

fn wrong_type(field: &str, v: &Bson, expected: &str) -> MongoError {
    MongoError::new(
        ErrorCode::TypeMismatch,
        format!(
            "BSON field 'collation.{field}' is the wrong type '{}', expected type '{expected}'",
            type_name(v)
        ),
    )
}

fn bad_enum(field: &str, value: &str) -> MongoError {
    MongoError::bad_value(format!(
        "Enumeration value '{value}' for field 'collation.{field}' is not a valid value."
    ))
}

fn get_bool(field: &str, v: &Bson) -> Result<bool, MongoError> {
    match v {
        Bson::Boolean(b) => Ok(*b),
        other => Err(wrong_type(field, other, "bool")),
    }
}

fn get_str<'a>(field: &str, v: &'a Bson) -> Result<&'a str, MongoError> {
    match v {
        Bson::String(s) => Ok(s),
        other => Err(wrong_type(field, other, "string")),
    }
}

/// mongod's locale id (`en_US`, `de@collation=phonebook`) as a BCP 47 locale
/// (`en-US`, `de-u-co-phonebk`).
fn bcp47(locale: &str) -> Option<Locale> {
    let (base, keywords) = match locale.split_once('@') {
        Some((b, k)) => (b, Some(k)),
        None => (locale, None),
    };
    let mut tag = base.replace('_', "-");
    if let Some(k) = keywords {
        let value = k.strip_prefix("collation=")?;
        // ICU's long collation names and their BCP 47 short forms.
        let short = match value {
            "phonebook" => "phonebk",
            "traditional" => "trad",
            "dictionary" => "dict",
            "gb2312han" => "gb2312",
            other => other,
        };
        tag.push_str("-u-co-");
        tag.push_str(short);
    }
    Locale::try_from_str(&tag).ok()
}

impl Collation {
    /// Parses a `collation` document; `None` for the simple collation. Errors carry
    /// mongod's codes (40415 unknown field, 14 wrong type, 2 bad value, 40414 no
    /// locale); `backwards: true` is refused with 115 (the collator cannot set it). An
    /// empty document is no collation, as in mongod (which builds a collator only for a
    /// non-empty one).
    pub fn parse(spec: &Document) -> Result<Option<Arc<Collation>>, MongoError> {
        if spec.is_empty() {
            return Ok(None);
        }
        let mut locale = None;
        let mut case_level = false;
        let mut case_first = "off".to_owned();
        let mut strength_n = 3i64;
        let mut numeric = false;
        let mut alternate = "non-ignorable".to_owned();
        let mut max_variable = "punct".to_owned();
        let mut normalization = false;
        let mut backwards = false;
        for (k, v) in spec {
            match k.as_str() {
                "locale" => locale = Some(get_str(k, v)?.to_owned()),
                "caseLevel" => case_level = get_bool(k, v)?,
                "caseFirst" => case_first = get_str(k, v)?.to_owned(),
                "strength" => {
                    strength_n = match v {
                        Bson::Int32(n) => i64::from(*n),
                        Bson::Int64(n) => *n,
                        Bson::Double(d) if d.fract() == 0.0 => *d as i64,
                        other => return Err(wrong_type(k, other, "int")),
                    }
                }
                "numericOrdering" => numeric = get_bool(k, v)?,
                "alternate" => alternate = get_str(k, v)?.to_owned(),
                "maxVariable" => max_variable = get_str(k, v)?.to_owned(),
                "normalization" => normalization = get_bool(k, v)?,
                "backwards" => backwards = get_bool(k, v)?,
                "version" => {
                    get_str(k, v)?;
                }
                other => {
                    return Err(MongoError::location(
                        eddy_codes::location::UNKNOWN_FIELD,
                        format!("BSON field 'collation.{other}' is an unknown field."),
                    ))
                }
            }
        }
        let Some(locale) = locale else {
            return Err(MongoError::location(
                eddy_codes::location::MISSING_FIELD,
                "BSON field 'collation.locale' is missing but a required field",
            ));
        };
        if locale == "simple" {
            if spec.len() > 1 {
                return Err(MongoError::bad_value(
                    "If \"locale\" is set to \"simple\", then no other fields may be specified",
                ));
            }
            return Ok(None);
        }
        let Some(icu_strength) = strength(strength_n) else {
            return Err(bad_enum("strength", &strength_n.to_string()));
        };
        let mut prefs = match bcp47(&locale) {
            Some(l) if !locale.is_empty() => CollatorPreferences::from(&l),
            _ => {
                return Err(MongoError::bad_value(format!(
                    "Field 'locale' is invalid in: {{ locale: \"{locale}\" }}"
                )))
            }
        };
        prefs.case_first = Some(match case_first.as_str() {
            "off" => CollationCaseFirst::False,
            "upper" => CollationCaseFirst::Upper,
            "lower" => CollationCaseFirst::Lower,
            other => return Err(bad_enum("caseFirst", other)),
        });
        prefs.numeric_ordering = Some(if numeric {
            CollationNumericOrdering::True
        } else {
            CollationNumericOrdering::False
        });
        let mut options = CollatorOptions::default();
        options.strength = Some(icu_strength);
        options.case_level = Some(if case_level {
            CaseLevel::On
        } else {
            CaseLevel::Off
        });
        options.alternate_handling = Some(match alternate.as_str() {
            "non-ignorable" => AlternateHandling::NonIgnorable,
            "shifted" => AlternateHandling::Shifted,
            other => return Err(bad_enum("alternate", other)),
        });
        options.max_variable = Some(match max_variable.as_str() {
            "punct" => MaxVariable::Punctuation,
            "space" => MaxVariable::Space,
            other => return Err(bad_enum("maxVariable", other)),
        });
        if backwards {
            return Err(MongoError::new(
                ErrorCode::CommandNotSupported,
                "Eddy does not support the collation option backwards: true",
            ));
        }
        let collator = Collator::try_new(prefs, options).map_err(|e| {
            MongoError::bad_value(format!(
                "Field 'locale' is invalid in: {{ locale: \"{locale}\" }}: {e}"
            ))
        })?;
        let spec = bson::doc! {
            "locale": locale,
            "caseLevel": case_level,
            "caseFirst": case_first,
            "strength": strength_n as i32,
            "numericOrdering": numeric,
            "alternate": alternate,
            "maxVariable": max_variable,
            "normalization": normalization,
            "backwards": backwards,
            "version": "57.1",
        };
        Ok(Some(Arc::new(Collation { spec, collator })))
    }

    /// Parses a command's `collation` field (absent means simple).
    pub fn from_command_field(v: Option<&Bson>) -> Result<Option<Arc<Collation>>, MongoError> {
        match v {
            None => Ok(None),
            Some(Bson::Document(d)) => Collation::parse(d),
            Some(other) => Err(MongoError::new(
                ErrorCode::TypeMismatch,
                format!(
                    "BSON field 'collation' is the wrong type '{}', expected type 'object'",
                    type_name(other)
                ),
            )),
        }
    }

    /// The full specification, as mongod reports a collation back.
    pub fn spec(&self) -> &Document {
        &self.spec
    }

    /// Compares two strings under this collation.
    pub fn compare(&self, a: &str, b: &str) -> Ordering {
        self.collator.compare(a, b)
    }

    /// Appends the ICU sort key of `s`: byte order of sort keys is this collation's
    /// order of the strings, and strings it finds equal have identical keys (what an
    /// index under this collation stores for a string, as mongod does).
    pub fn write_sort_key(&self, s: &str, out: &mut Vec<u8>) {
        let Ok(()) = self.collator.write_sort_key_to(s, out);
    }

    /// A stored collation (a catalog entry's normalized spec), parsed once per
    /// distinct spec and shared: index keys and default collations read it on every
    /// write and query. `None` for the simple collation, or for a spec this build
    /// cannot parse (never written: every stored spec was parsed before it was stored).
    pub fn stored(spec: &Document) -> Option<Arc<Collation>> {
        static CACHE: OnceLock<Mutex<HashMap<String, Arc<Collation>>>> = OnceLock::new();
        let key = spec.to_string();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(c) = cache.lock().ok()?.get(&key) {
            return Some(Arc::clone(c));
        }
        let parsed = Collation::parse(spec).ok()??;
        cache.lock().ok()?.insert(key, Arc::clone(&parsed));
        Some(parsed)
    }

    /// The normalized spec of a collation to store (`None`: simple, stored as nothing).
    pub fn normalize(spec: &Document) -> Result<Option<Document>, MongoError> {
        Ok(Collation::parse(spec)?.map(|c| c.spec().clone()))
    }
}

/// Whether two collations (`None`: simple) are the same one: equal normalized specs.
pub fn same(a: Option<&Collation>, b: Option<&Collation>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.spec == b.spec,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn coll(spec: Document) -> Arc<Collation> {
        Collation::parse(&spec)
            .expect("valid collation")
            .expect("not simple")
    }

    #[test]
    fn strengths_and_options() {
        let s2 = coll(doc! {"locale": "en_US", "strength": 2});
        assert_eq!(s2.compare("ping", "PING"), Ordering::Equal);
        assert_eq!(s2.compare("cafe", "café"), Ordering::Less);
        let s1 = coll(doc! {"locale": "en", "strength": 1});
        assert_eq!(s1.compare("cafe", "CAFÉ"), Ordering::Equal);
        let s3 = coll(doc! {"locale": "en_US"});
        assert_eq!(s3.compare("ping", "PING"), Ordering::Less);
        // Alphabetical, not byte order: "B" sorts after "a".
        assert_eq!(s3.compare("a", "B"), Ordering::Less);
        assert_eq!("a".cmp("B"), Ordering::Greater);
        let upper = coll(doc! {"locale": "en", "caseFirst": "upper"});
        assert_eq!(upper.compare("A", "a"), Ordering::Less);
        let numeric = coll(doc! {"locale": "en", "numericOrdering": true});
        assert_eq!(numeric.compare("10", "9"), Ordering::Greater);
        let shifted = coll(doc! {"locale": "en", "alternate": "shifted"});
        // Shifted punctuation is ignored below the quaternary level.
        assert_eq!(shifted.compare("a-b", "ab"), Ordering::Equal);
        let phonebook = coll(doc! {"locale": "de@collation=phonebook"});
        assert_eq!(
            phonebook.spec().get_str("locale").ok(),
            Some("de@collation=phonebook")
        );
        assert_eq!(
            phonebook.compare("Müller", "Muffler"),
            Ordering::Less,
            "ü as ue"
        );
        assert_eq!(
            s2.spec(),
            &doc! {
                "locale": "en_US", "caseLevel": false, "caseFirst": "off", "strength": 2,
                "numericOrdering": false, "alternate": "non-ignorable", "maxVariable": "punct",
                "normalization": false, "backwards": false, "version": "57.1",
            }
        );
    }

    #[test]
    fn sort_keys_order_as_the_collation() {
        let s2 = coll(doc! {"locale": "en_US", "strength": 2});
        let key = |c: &Collation, s: &str| {
            let mut out = Vec::new();
            c.write_sort_key(s, &mut out);
            out
        };
        assert_eq!(key(&s2, "abc"), key(&s2, "ABC"));
        assert!(key(&s2, "a") < key(&s2, "B"));
        let words = [
            "Zebra", "apple", "Äpfel", "banana", "apple2", "", "10", "9", "café", "cafe",
        ];
        for c in [
            &s2,
            &coll(doc! {"locale": "de"}),
            &coll(doc! {"locale": "en", "numericOrdering": true}),
        ] {
            for a in words {
                for b in words {
                    assert_eq!(key(c, a).cmp(&key(c, b)), c.compare(a, b), "{a} {b}");
                }
            }
        }
        let stored = Collation::stored(s2.spec()).expect("stored");
        assert!(same(Some(&stored), Some(&s2)));
        assert!(!same(Some(&stored), None));
        assert!(Collation::stored(&doc! {"locale": "simple"}).is_none());
    }

    #[test]
    fn simple_and_errors() {
        assert!(Collation::parse(&doc! {"locale": "simple"})
            .expect("simple")
            .is_none());
        assert!(Collation::parse(&doc! {}).expect("empty").is_none());
        let code = |spec: Document| Collation::parse(&spec).expect_err("invalid").code;
        assert_eq!(code(doc! {"strength": 2}), 40414);
        assert_eq!(code(doc! {"locale": "en", "bogus": 1}), 40415);
        assert_eq!(code(doc! {"locale": "en", "strength": "2"}), 14);
        assert_eq!(code(doc! {"locale": "en", "strength": 6}), 2);
        assert_eq!(code(doc! {"locale": "en", "caseFirst": "x"}), 2);
        assert_eq!(code(doc! {"locale": "simple", "strength": 2}), 2);
        assert_eq!(code(doc! {"locale": "en", "backwards": true}), 115);
        assert_eq!(code(doc! {"locale": "!!"}), 2);
    }
}
