//! Reading the spanned TOML document: every value keeps its byte span and key path, so every
//! problem found later can name the line and the key.

use std::ops::Range;
use std::str::FromStr;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{Location, ManifestError};

pub(super) type Span = Range<usize>;

/// A problem found while reading, before byte offsets become lines.
#[derive(Debug)]
pub(super) struct Problem {
    pub span: Span,
    pub key: String,
    pub kind: ProblemKind,
}

#[derive(Debug)]
pub(super) enum ProblemKind {
    Unknown {
        expected: &'static [&'static str],
    },
    Missing,
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    Invalid {
        value: Option<String>,
        rule: String,
    },
    /// Recorded already (the builder collects every problem); nothing more to say.
    Reported,
}

impl Problem {
    /// A rule broken by the element at `span` as a whole (no single value to quote).
    pub fn rule(span: Span, key: impl Into<String>, rule: impl Into<String>) -> Problem {
        Problem {
            span,
            key: key.into(),
            kind: ProblemKind::Invalid { value: None, rule: rule.into() },
        }
    }

    /// Stands for problems the builder recorded already: the element they are in has no value.
    pub fn reported() -> Problem {
        Problem { span: 0..0, key: String::new(), kind: ProblemKind::Reported }
    }

    pub fn is_reported(&self) -> bool {
        matches!(self.kind, ProblemKind::Reported)
    }

    pub fn into_error(self, text: &str) -> ManifestError {
        let location = Location::of_offset(text, self.span.start);
        let key = self.key;
        match self.kind {
            ProblemKind::Unknown { expected } => {
                ManifestError::UnknownKey { location, key, expected: expected.to_vec() }
            }
            ProblemKind::Missing => ManifestError::MissingKey { location, key },
            ProblemKind::WrongType { expected, found } => {
                ManifestError::WrongType { location, key, expected, found }
            }
            ProblemKind::Invalid { value, rule } => {
                ManifestError::Invalid { location, key, value, rule }
            }
            ProblemKind::Reported => ManifestError::Invalid {
                location,
                key,
                value: None,
                rule: "(reported above)".to_owned(),
            },
        }
    }
}

pub(super) type Result<T> = std::result::Result<T, Problem>;

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

/// A string value with its key path and span.
#[derive(Debug, Clone)]
pub(super) struct Str<'a> {
    pub key: String,
    pub span: Span,
    pub text: &'a str,
}

impl<'a> Str<'a> {
    /// A problem with this value, quoting it.
    pub fn invalid(&self, rule: impl Into<String>) -> Problem {
        Problem {
            span: self.span.clone(),
            key: self.key.clone(),
            kind: ProblemKind::Invalid { value: Some(self.text.to_owned()), rule: rule.into() },
        }
    }

    /// Parses the text with a `FromStr` whose error carries a rule.
    pub fn parse<T, E>(&self) -> Result<T>
    where
        T: FromStr<Err = E>,
        E: RuleText,
    {
        self.text.parse().map_err(|e: E| self.invalid(e.rule_text()))
    }

    pub fn owned(&self) -> String {
        self.text.to_owned()
    }

    /// Checks the text with a rule function returning the rule text on failure.
    pub fn check<E: Into<String>>(
        &self,
        rule: impl Fn(&str) -> std::result::Result<(), E>,
    ) -> Result<()> {
        rule(self.text).map_err(|e| self.invalid(e))
    }

    /// [`Str::check`], then the owned text.
    pub fn checked<E: Into<String>>(
        &self,
        rule: impl Fn(&str) -> std::result::Result<(), E>,
    ) -> Result<String> {
        self.check(rule).map(|()| self.owned())
    }
}

/// Errors of the validated types expose their rule.
pub(super) trait RuleText {
    fn rule_text(&self) -> String;
}

impl RuleText for crate::identity::IdentityError {
    fn rule_text(&self) -> String {
        self.rule.clone()
    }
}

/// A TOML table with its key path and span (the header, or the inline table).
#[derive(Clone)]
pub(super) struct Table<'a, 'i> {
    pub key: String,
    pub span: Span,
    map: &'a DeTable<'i>,
}

/// An element of an array with its key path.
pub(super) struct Item<'a, 'i> {
    pub key: String,
    pub span: Span,
    pub value: &'a DeValue<'i>,
}

impl<'a, 'i> Item<'a, 'i> {
    fn new(key: String, v: &'a Spanned<DeValue<'i>>) -> Self {
        Item { key, span: v.span(), value: v.get_ref() }
    }

    fn wrong(&self, expected: &'static str) -> Problem {
        Problem {
            span: self.span.clone(),
            key: self.key.clone(),
            kind: ProblemKind::WrongType { expected, found: self.value.type_str() },
        }
    }

    pub fn as_str(&self) -> Result<Str<'a>> {
        match self.value {
            DeValue::String(s) => {
                Ok(Str { key: self.key.clone(), span: self.span.clone(), text: s.as_ref() })
            }
            _ => Err(self.wrong("a string")),
        }
    }

    pub fn as_bool(&self) -> Result<bool> {
        match self.value {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.wrong("a boolean (true or false)")),
        }
    }

    pub fn as_table(&self) -> Result<Table<'a, 'i>> {
        match self.value {
            DeValue::Table(t) => {
                Ok(Table { key: self.key.clone(), span: self.span.clone(), map: t })
            }
            _ => Err(self.wrong("a table")),
        }
    }

    /// The elements of an array, each with its indexed key path.
    pub fn as_array(&self, expected: &'static str) -> Result<Vec<Item<'a, 'i>>> {
        match self.value {
            DeValue::Array(a) => Ok(a
                .iter()
                .enumerate()
                .map(|(i, v)| Item::new(format!("{}[{i}]", self.key), v))
                .collect()),
            _ => Err(self.wrong(expected)),
        }
    }

    /// A problem with this value as a whole.
    pub fn invalid(&self, rule: impl Into<String>) -> Problem {
        Problem::rule(self.span.clone(), self.key.clone(), rule)
    }

    /// An integer as text in base 10 (`None` if it is not an integer).
    pub fn integer(&self) -> Option<(String, u32)> {
        match self.value {
            DeValue::Integer(i) => Some((i.as_str().to_owned(), i.radix())),
            _ => None,
        }
    }

    pub fn type_str(&self) -> &'static str {
        self.value.type_str()
    }
}

impl<'a, 'i> Table<'a, 'i> {
    /// The document root.
    pub fn root(doc: &'a Spanned<DeTable<'i>>) -> Self {
        Table { key: String::new(), span: doc.span(), map: doc.get_ref() }
    }

    pub fn child_key(&self, key: &str) -> String {
        join(&self.key, key)
    }

    /// Every key not in `allowed`, in document order.
    pub fn unknown_keys(&self, allowed: &'static [&'static str]) -> Vec<Problem> {
        let mut unknown: Vec<Problem> = self
            .map
            .iter()
            .filter(|(k, _)| !allowed.contains(&k.get_ref().as_ref()))
            .map(|(k, _)| Problem {
                span: k.span(),
                key: self.child_key(k.get_ref()),
                kind: ProblemKind::Unknown { expected: allowed },
            })
            .collect();
        unknown.sort_by_key(|p| p.span.start);
        unknown
    }

    pub fn get(&self, key: &str) -> Option<Item<'a, 'i>> {
        self.map.get(key).map(|v| Item::new(self.child_key(key), v))
    }

    pub fn missing(&self, key: &str) -> Problem {
        Problem { span: self.span.clone(), key: self.child_key(key), kind: ProblemKind::Missing }
    }

    pub fn required(&self, key: &str) -> Result<Item<'a, 'i>> {
        self.get(key).ok_or_else(|| self.missing(key))
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<Str<'a>>> {
        self.get(key).map(|v| v.as_str()).transpose()
    }

    pub fn req_str(&self, key: &str) -> Result<Str<'a>> {
        self.required(key)?.as_str()
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key).map(|v| v.as_bool()).transpose()
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        Ok(self.opt_bool(key)?.unwrap_or(default))
    }

    pub fn opt_table(&self, key: &str) -> Result<Option<Table<'a, 'i>>> {
        self.get(key).map(|v| v.as_table()).transpose()
    }

    /// An array of tables (`[[key]]` or `key = [{…}, …]`); empty if absent.
    pub fn tables(&self, key: &str) -> Result<Vec<Table<'a, 'i>>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(v) => v
                .as_array("an array of tables ([[…]] or [{…}, …])")?
                .iter()
                .map(|item| item.as_table().map_err(|_| item.wrong("a table ({ … })")))
                .collect(),
        }
    }

    /// An array of strings; empty if absent.
    pub fn strings(&self, key: &str) -> Result<Vec<Str<'a>>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(v) => v.as_array("an array of strings")?.iter().map(Item::as_str).collect(),
        }
    }

    /// A string or an array of strings (a key that once took one value and now takes a
    /// list); empty if absent.
    pub fn string_or_strings(&self, key: &str) -> Result<Vec<Str<'a>>> {
        match self.get(key) {
            Some(v) if matches!(v.value, DeValue::String(_)) => Ok(vec![v.as_str()?]),
            Some(v) => {
                v.as_array("a string or an array of strings")?.iter().map(Item::as_str).collect()
            }
            None => Ok(Vec::new()),
        }
    }

    /// The element `key` itself, for problems about a whole array or table.
    pub fn span_of(&self, key: &str) -> Span {
        self.map.get(key).map_or(self.span.clone(), Spanned::span)
    }
}
