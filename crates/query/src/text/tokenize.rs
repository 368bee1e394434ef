//! Words of a text (mongod's `UnicodeFTSTokenizer`, `textIndexVersion` 3): split at
//! delimiters, lower-cased, stop words dropped, stemmed, diacritics removed.
//!
//! Delimiters are mongod's Unicode classes (White_Space, Dash, Hyphen, Quotation_Mark,
//! Terminal_Punctuation, Pattern_Syntax, STerm), approximated from general categories:
//! white space, every punctuation but connectors (`_` joins words), and the symbols of
//! the ASCII range and of the arrows-to-miscellaneous-symbols blocks that Pattern_Syntax
//! lists. English keeps the apostrophe inside words (`don't` is one word, and a stop word).

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

use super::Language;

/// What the tokenizer produces (mongod's `FTSTokenizer::Options`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenOptions {
    pub filter_stop_words: bool,
    pub case_sensitive: bool,
    pub diacritic_sensitive: bool,
}

/// Whether `c` separates words in `language`.
pub fn is_delimiter(c: char, language: Language) -> bool {
    if c.is_ascii() {
        if c == '\'' {
            return language != Language::English;
        }
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_whitespace() {
        return true;
    }
    match c.general_category_group() {
        GeneralCategoryGroup::Punctuation => {
            c.general_category() != GeneralCategory::ConnectorPunctuation
        }
        GeneralCategoryGroup::Symbol => {
            matches!(u32::from(c), 0xA1..=0xBF | 0x2190..=0x2BFF | 0x3000..=0x303F)
        }
        GeneralCategoryGroup::Separator => true,
        _ => false,
    }
}

/// Lower-cases as mongod's case folding does (Turkish maps `I` to dotless `ı` and `İ`
/// to `i`).
pub fn lower(s: &str, language: Language) -> String {
    if language == Language::Turkish {
        s.chars()
            .flat_map(|c| match c {
                'I' => vec!['ı'],
                'İ' => vec!['i'],
                other => other.to_lowercase().collect(),
            })
            .collect()
    } else {
        s.to_lowercase()
    }
}

/// Removes diacritics: canonical decomposition without the combining marks.
pub fn strip_diacritics(s: &str) -> String {
    if s.is_ascii() {
        return s.to_owned();
    }
    s.nfd().filter(|c| !is_combining_mark(*c)).nfc().collect()
}

/// The words of `text` in `language`, in order (duplicates kept).
pub fn tokens(text: &str, language: Language, options: TokenOptions) -> Vec<String> {
    let mut out = Vec::new();
    for raw in text
        .split(|c: char| is_delimiter(c, language))
        .filter(|w| !w.is_empty())
    {
        // Stop words are matched lower-cased, diacritics kept.
        let lowered = lower(raw, language);
        if options.filter_stop_words && language.is_stop_word(&lowered) {
            continue;
        }
        let word = if options.case_sensitive {
            raw.to_owned()
        } else {
            lowered
        };
        // The stemmer knows diacritics: stem before removing them.
        let stemmed = language.stem(&word).into_owned();
        out.push(if options.diacritic_sensitive {
            stemmed
        } else {
            strip_diacritics(&stemmed)
        });
    }
    out
}

/// A string as a phrase is compared: case-folded unless case-sensitive, diacritics
/// removed unless diacritic-sensitive (mongod's `FTSUnicodePhraseMatcher`).
pub fn fold(
    s: &str,
    language: Language,
    case_sensitive: bool,
    diacritic_sensitive: bool,
) -> String {
    let s = if case_sensitive {
        s.to_owned()
    } else {
        lower(s, language)
    };
    if diacritic_sensitive {
        s
    } else {
        strip_diacritics(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        tokens(
            s,
            Language::English,
            TokenOptions {
                filter_stop_words: true,
                ..TokenOptions::default()
            },
        )
    }

    #[test]
    fn splits_lowercases_stems_and_drops_stop_words() {
        assert_eq!(
            words("The Coffee-shop's baking!"),
            ["coffe", "shop", "bake"]
        );
        assert_eq!(words("don't stop"), ["stop"]);
        assert_eq!(words("snake_case  x"), ["snake_cas", "x"]);
        assert_eq!(words("Café «crème»"), ["cafe", "creme"]);
    }

    #[test]
    fn diacritics_and_case() {
        assert_eq!(strip_diacritics("Café Crème"), "Cafe Creme");
        assert_eq!(lower("IRMAK", Language::Turkish), "ırmak");
        let sensitive = TokenOptions {
            filter_stop_words: true,
            case_sensitive: true,
            diacritic_sensitive: true,
        };
        assert_eq!(tokens("Café", Language::None, sensitive), ["Café"]);
        assert_eq!(fold("Café", Language::English, false, false), "cafe");
    }
}
