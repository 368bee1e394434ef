//! MongoDB (PCRE) regular expressions on top of the Rust `regex` crate.
//!
//! mongod compiles `$regex` patterns with PCRE2 (UTF mode, no UCP). This module
//! validates the option letters as mongod does (`i m s x u`; anything else is error
//! 51108) and translates the PCRE constructs whose meaning differs in Rust:
//!
//! * `\d \w \s` (and negations, outside classes) are ASCII-only in PCRE without UCP;
//! * `$` outside multiline mode also matches before a final `\n`, and `\Z` means the
//!   same; both become `(?:\n?\z)` (safe because only `is_match` is used);
//! * `\h` (horizontal space) becomes `[ \t]`.
//!
//! Patterns the `regex` crate cannot express (backreferences, lookaround, atomic
//! groups, possessive quantifiers) are compiled with `fancy-regex` instead, a
//! backtracking engine layered on the same crate, so `^(?!system\.)` works as in mongod.
//! What neither accepts is reported as mongod reports an invalid pattern: code 51091
//! "Regular expression is invalid: ...".

use eddy_codes::MongoError;

/// mongod's limit on a pattern's length.
const MAX_PATTERN_SIZE: usize = 32764;

/// A compiled MongoDB regular expression.
#[derive(Debug, Clone)]
pub struct MongoRegex {
    pub pattern: String,
    pub options: String,
    re: Engine,
}

/// The compiled pattern: the linear-time engine when it can express the pattern, the
/// backtracking one otherwise.
#[derive(Debug, Clone)]
enum Engine {
    Plain(regex::Regex),
    Fancy(Box<fancy_regex::Regex>),
}

impl PartialEq for MongoRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.options == other.options
    }
}

impl MongoRegex {
    /// Compiles `pattern` with mongod `options`.
    pub fn new(pattern: &str, options: &str) -> Result<MongoRegex, MongoError> {
        if pattern.len() > MAX_PATTERN_SIZE {
            return Err(MongoError::bad_value("Regular expression is too long"));
        }
        if pattern.contains('\0') {
            return Err(MongoError::bad_value(
                "Regular expression cannot contain an embedded null byte",
            ));
        }
        let mut multiline = false;
        let mut flags = String::new();
        for c in options.chars() {
            match c {
                'i' => flags.push('i'),
                'm' => {
                    multiline = true;
                    flags.push('m')
                }
                's' => flags.push('s'),
                'x' => flags.push('x'),
                'u' => {}
                other => {
                    return Err(MongoError::location(
                        51108,
                        format!("invalid flag in regex options: {other}"),
                    ))
                }
            }
        }
        let translated = translate(pattern, multiline, options.contains('x'));
        let full = if flags.is_empty() {
            translated
        } else {
            format!("(?{flags}){translated}")
        };
        let plain = regex::RegexBuilder::new(&full).size_limit(1 << 24).build();
        let re = match plain {
            Ok(re) => Engine::Plain(re),
            Err(first) => fancy_regex::RegexBuilder::new(&full)
                .delegate_size_limit(1 << 24)
                .build()
                .map(|re| Engine::Fancy(Box::new(re)))
                .map_err(|_| first)
                .map_err(|e| {
                    let detail = match e {
                        regex::Error::Syntax(s) => s
                            .lines()
                            .rev()
                            .find(|l| l.starts_with("error:"))
                            .map(|l| l.trim_start_matches("error:").trim().to_owned())
                            .unwrap_or(s),
                        other => other.to_string(),
                    };
                    MongoError::location(51091, format!("Regular expression is invalid: {detail}"))
                })?,
        };
        Ok(MongoRegex {
            pattern: pattern.to_owned(),
            options: options.to_owned(),
            re,
        })
    }

    /// Whether the pattern matches anywhere in `s`. A backtracking match that exceeds
    /// its step limit counts as no match (PCRE's match limit behaves the same way).
    pub fn is_match(&self, s: &str) -> bool {
        match &self.re {
            Engine::Plain(re) => re.is_match(s),
            Engine::Fancy(re) => re.is_match(s).unwrap_or(false),
        }
    }

    /// The first match at or after byte `start`: its span and its capture groups
    /// (`None` for a group that did not participate), for `$regexFind`.
    pub fn captures_at(
        &self,
        text: &str,
        start: usize,
    ) -> Option<(usize, usize, Vec<Option<String>>)> {
        match &self.re {
            Engine::Plain(re) => {
                let caps = re.captures_at(text, start)?;
                let m = caps.get(0)?;
                let groups = (1..caps.len())
                    .map(|i| caps.get(i).map(|g| g.as_str().to_owned()))
                    .collect();
                Some((m.start(), m.end(), groups))
            }
            Engine::Fancy(re) => {
                let caps = re.captures_from_pos(text, start).ok()??;
                let m = caps.get(0)?;
                let groups = (1..caps.len())
                    .map(|i| caps.get(i).map(|g| g.as_str().to_owned()))
                    .collect();
                Some((m.start(), m.end(), groups))
            }
        }
    }
}

/// Rewrites PCRE-only meanings into Rust `regex` syntax (see the module doc).
fn translate(p: &str, multiline: bool, extended: bool) -> String {
    let mut out = String::with_capacity(p.len() + 8);
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let n = chars[i + 1];
            i += 2;
            let rep: Option<&str> = match (n, in_class) {
                ('d', false) => Some("[0-9]"),
                ('D', false) => Some("[^0-9]"),
                ('w', false) => Some("[0-9A-Za-z_]"),
                ('W', false) => Some("[^0-9A-Za-z_]"),
                ('s', false) => Some("[\\t\\n\\x0B\\x0C\\r ]"),
                ('S', false) => Some("[^\\t\\n\\x0B\\x0C\\r ]"),
                ('d', true) => Some("0-9"),
                ('w', true) => Some("0-9A-Za-z_"),
                ('s', true) => Some("\\t\\n\\x0B\\x0C\\r "),
                ('h', false) => Some("[ \\t]"),
                ('h', true) => Some(" \\t"),
                ('Z', false) => Some("(?:\\n?\\z)"),
                _ => None,
            };
            match rep {
                Some(r) => out.push_str(r),
                None => {
                    out.push('\\');
                    out.push(n);
                }
            }
            continue;
        }
        if in_class {
            if c == ']' {
                in_class = false;
            }
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push('[');
                i += 1;
                // A leading ']' (or '^]') is a literal in PCRE.
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            '$' if !multiline => {
                out.push_str("(?:\\n?\\z)");
                i += 1;
            }
            '#' if extended => {
                // Comment to end of line: dropped (Rust's (?x) also has comments, but
                // dropping avoids translating their contents).
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcre_semantics() {
        let cases: &[(&str, &str, &str, bool)] = &[
            ("^abc", "", "abcd", true),
            ("ABC", "i", "xabcx", true),
            ("c$", "", "abc\n", true),
            ("c$", "", "abc\nd", false),
            ("^d", "m", "abc\nd", true),
            ("a.c", "", "a\nc", false),
            ("a.c", "s", "a\nc", true),
            ("\\d+", "", "٣", false),
            ("\\w", "", "é", false),
            ("a b # comment", "x", "ab", true),
            ("[]a]", "", "]", true),
        ];
        for (p, o, s, want) in cases {
            let re = MongoRegex::new(p, o).expect("valid");
            assert_eq!(re.is_match(s), *want, "/{p}/{o} on {s:?}");
        }
    }

    #[test]
    fn errors() {
        assert_eq!(
            MongoRegex::new("a", "q")
                .map(|_| ())
                .expect_err("invalid")
                .code,
            51108
        );
        assert_eq!(
            MongoRegex::new("(", "")
                .map(|_| ())
                .expect_err("invalid")
                .code,
            51091
        );
    }

    #[test]
    fn lookaround_and_backreferences_as_pcre() {
        let not_system = MongoRegex::new(r"^(?!system\.)", "").expect("lookahead");
        assert!(not_system.is_match("users"));
        assert!(!not_system.is_match("system.views"));
        let behind = MongoRegex::new("(?<=a)b", "").expect("lookbehind");
        assert!(behind.is_match("ab") && !behind.is_match("cb"));
        let twice = MongoRegex::new(r"(\w)\1", "").expect("backreference");
        assert!(twice.is_match("hello") && !twice.is_match("helo"));
        assert_eq!(
            twice.captures_at("hello", 0).map(|c| (c.0, c.1)),
            Some((2, 4))
        );
    }
}
