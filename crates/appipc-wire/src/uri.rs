//! The URIs of protocol activation (`Launcher.LaunchUriAsync`, `LaunchUriForResultsAsync`),
//! checked once where they enter: a client's bytes become a [`Uri`] or an error, and nothing
//! else in the broker looks at the raw string.
//!
//! A URI is `scheme ":" rest` (RFC 3986 §3.1: the scheme is a letter followed by letters,
//! digits, `+`, `-` and `.`, compared case-insensitively; it is kept lower-cased here). The rest
//! is passed to the target as the client wrote it, but it may hold no ASCII control character,
//! no space and no DEL (they are what a terminal, a log line or a command line would
//! interpret; RFC 3986 has them percent-encoded), and the whole URI is at most [`MAX_URI_LEN`]
//! bytes (Windows' `INTERNET_MAX_URL_LENGTH` is 2083 characters; 2048 bytes here).

/// The longest URI accepted, in bytes.
pub const MAX_URI_LEN: usize = 2048;

/// The longest scheme accepted (a manifest's protocol name is at most 39 characters; a longer
/// scheme can name no package, but a `launch_uri` of it still goes to the desktop's handler).
pub const MAX_SCHEME_LEN: usize = 64;

/// Why a string is not a URI this broker accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UriError {
    /// Empty.
    Empty,
    /// Longer than [`MAX_URI_LEN`].
    TooLong(usize),
    /// No `:` after a scheme.
    NoScheme,
    /// The scheme breaks RFC 3986 (or is longer than [`MAX_SCHEME_LEN`]).
    BadScheme,
    /// A control character, space or DEL at this byte offset.
    ForbiddenByte {
        /// The offset.
        at: usize,
        /// The byte.
        byte: u8,
    },
}

impl std::fmt::Display for UriError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UriError::Empty => f.write_str("the URI is empty"),
            UriError::TooLong(n) => {
                write!(f, "the URI is {n} bytes long, longer than the {MAX_URI_LEN} accepted")
            }
            UriError::NoScheme => f.write_str("the URI has no scheme (expected scheme:rest)"),
            UriError::BadScheme => write!(
                f,
                "the URI's scheme must be a letter followed by letters, digits, '+', '-' or '.', \
                 at most {MAX_SCHEME_LEN} characters"
            ),
            UriError::ForbiddenByte { at, byte } => write!(
                f,
                "the URI holds byte 0x{byte:02x} at offset {at}: control characters, spaces and \
                 DEL must be percent-encoded"
            ),
        }
    }
}

impl std::error::Error for UriError {}

/// A checked URI: its lower-cased scheme and the rest after the `:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Uri {
    scheme: String,
    rest: String,
}

impl Uri {
    /// Checks `s` (see the module documentation).
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        if s.is_empty() {
            return Err(UriError::Empty);
        }
        if s.len() > MAX_URI_LEN {
            return Err(UriError::TooLong(s.len()));
        }
        if let Some(at) = s.bytes().position(|b| b <= b' ' || b == 0x7f) {
            return Err(UriError::ForbiddenByte { at, byte: s.as_bytes()[at] });
        }
        let Some((scheme, rest)) = s.split_once(':') else {
            return Err(UriError::NoScheme);
        };
        let mut bytes = scheme.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
        let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !first_ok || !rest_ok || scheme.len() > MAX_SCHEME_LEN {
            return Err(if scheme.is_empty() { UriError::NoScheme } else { UriError::BadScheme });
        }
        Ok(Uri { scheme: scheme.to_ascii_lowercase(), rest: rest.to_owned() })
    }

    /// The scheme, lower-cased.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// What follows the `:`, as written.
    pub fn rest(&self) -> &str {
        &self.rest
    }
}

impl std::fmt::Display for Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.scheme, self.rest)
    }
}

impl std::str::FromStr for Uri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Uri, UriError> {
        Uri::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_checked_and_lower_cased() {
        let u = Uri::parse("Contoso-Pick:photos?x=1#f").unwrap();
        assert_eq!(u.scheme(), "contoso-pick");
        assert_eq!(u.rest(), "photos?x=1#f");
        assert_eq!(u.to_string(), "contoso-pick:photos?x=1#f");
        assert_eq!(Uri::parse("a+b.c-d:").unwrap().scheme(), "a+b.c-d");
        assert_eq!(Uri::parse(""), Err(UriError::Empty));
        assert_eq!(Uri::parse("nocolon"), Err(UriError::NoScheme));
        assert_eq!(Uri::parse(":x"), Err(UriError::NoScheme));
        assert_eq!(Uri::parse("1abc:x"), Err(UriError::BadScheme));
        assert_eq!(Uri::parse("a_b:x"), Err(UriError::BadScheme));
        assert_eq!(Uri::parse("ü:x"), Err(UriError::BadScheme));
        assert_eq!(Uri::parse(&format!("{}:x", "a".repeat(65))), Err(UriError::BadScheme));
    }

    #[test]
    fn hostile_bytes_are_refused() {
        for (s, at) in [
            ("a:b\0c", 3),
            ("a:b\nc", 3),
            ("a:b\x1b[2Jc", 3),
            ("a:b c", 3),
            ("a:\x7f", 2),
            ("\ta:b", 0),
        ] {
            assert!(
                matches!(Uri::parse(s), Err(UriError::ForbiddenByte { at: a, .. }) if a == at),
                "{s:?}"
            );
        }
        let long = format!("a:{}", "x".repeat(MAX_URI_LEN));
        assert_eq!(Uri::parse(&long), Err(UriError::TooLong(MAX_URI_LEN + 2)));
        // Non-ASCII after the scheme is kept (it is UTF-8 already).
        assert_eq!(Uri::parse("a:ünï").unwrap().rest(), "ünï");
    }
}
