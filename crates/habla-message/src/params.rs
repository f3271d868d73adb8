//! Parameter lists: `;name[=value]` after URIs (RFC 3261 §19.1.1) and after
//! header values (`generic-param`, §25.1). Kept as the text as written and
//! scanned on access, so holding them costs no allocation.

use crate::scan::{class, is, is_param_value, Scanner};
use std::fmt;

/// A parameter list as written, starting at its first `;` (or empty),
/// borrowed from the value it belongs to.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Params<'a>(pub(crate) &'a str);

impl<'a> Params<'a> {
    /// The list as written, including the leading `;`.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Parameters in order, names and values as written (values keep their
    /// quotes, if any).
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            s: Scanner::new(self.0),
        }
    }

    /// Looks a parameter up by name (case-insensitive): `Some(None)` for a
    /// parameter without value, `Some(Some(v))` with one.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The value of a parameter that has one.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.get(name).flatten()
    }

    /// Whether a parameter is present, with or without value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl fmt::Display for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Iterator over `(name, value)` pairs of a [`Params`].
pub struct ParamIter<'a> {
    s: Scanner<'a>,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);
    fn next(&mut self) -> Option<Self::Item> {
        // The text was validated when parsed, so this only needs to find the
        // pieces; anything unexpected ends the iteration.
        let s = &mut self.s;
        loop {
            s.skip_lws();
            if !s.eat(b';') {
                return None;
            }
            s.skip_lws();
            let name = s.take_while(|c| c != b'=' && c != b';' && !is_lws_byte(c));
            let save = s.pos;
            s.skip_lws();
            let value = if s.eat(b'=') {
                s.skip_lws();
                match s.quoted_string() {
                    Some(q) => Some(q),
                    None => Some(s.take_while(|c| c != b';' && !is_lws_byte(c))),
                }
            } else {
                s.pos = save;
                None
            };
            if !name.is_empty() {
                return Some((name, value));
            }
        }
    }
}

fn is_lws_byte(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Scans `*( SEMI generic-param )` of a header value (LWS allowed around `;`
/// and `=`), RFC 3261 §25.1. Returns the text of the list.
pub(crate) fn scan_header_params<'a>(s: &mut Scanner<'a>) -> Result<&'a str, &'static str> {
    scan_header_params_finding(s, "").map(|(p, _)| p)
}

/// [`scan_header_params`] that also returns the first parameter named `key`
/// (case-insensitive; `Some(None)` when it has no value), as
/// [`Params::get`] would find it in the returned list.
#[inline]
pub(crate) fn scan_header_params_finding<'a>(
    s: &mut Scanner<'a>,
    key: &str,
) -> Result<(&'a str, Option<Option<&'a str>>), &'static str> {
    let mut start = None;
    let mut found = None;
    loop {
        let save = s.pos;
        s.skip_lws();
        if s.peek() != Some(b';') {
            s.pos = save;
            break;
        }
        start.get_or_insert(s.pos);
        s.pos += 1;
        s.skip_lws();
        let Some(name) = s.token() else {
            return Err("empty or invalid parameter name");
        };
        let save = s.pos;
        s.skip_lws();
        let value = if s.eat(b'=') {
            s.skip_lws();
            let v = match s.quoted_string() {
                Some(q) => q,
                None => s.take_while(is_param_value),
            };
            if v.is_empty() {
                return Err("parameter has '=' but no valid value");
            }
            Some(v)
        } else {
            s.pos = save;
            None
        };
        if found.is_none() && !key.is_empty() && name.eq_ignore_ascii_case(key) {
            found = Some(value);
        }
    }
    let list = match start {
        Some(st) => s.s.get(st..s.pos).unwrap_or(""),
        None => "",
    };
    Ok((list, found))
}

/// RFC 3261 §25.1 `paramchar`: param-unreserved / unreserved / escaped.
#[inline(always)]
pub(crate) fn is_uri_param_char(c: u8) -> bool {
    is(c, class::URI_PARAM)
}

/// Scans `*( ";" uri-parameter )` of a SIP URI (no whitespace allowed).
#[inline]
pub(crate) fn scan_uri_params<'a>(s: &mut Scanner<'a>) -> Result<&'a str, &'static str> {
    let start = s.pos;
    let b = s.s.as_bytes();
    let mut i = start;
    let mut escaped = false;
    while b.get(i) == Some(&b';') {
        i += 1;
        let name_start = i;
        while let Some(&c) = b.get(i) {
            if !is_uri_param_char(c) {
                break;
            }
            escaped |= c == b'%';
            i += 1;
        }
        if i == name_start {
            return Err(escape_error_before(b, start, i).unwrap_or("empty URI parameter"));
        }
        if b.get(i) == Some(&b'=') {
            i += 1;
            let value_start = i;
            while let Some(&c) = b.get(i) {
                if !is_uri_param_char(c) {
                    break;
                }
                escaped |= c == b'%';
                i += 1;
            }
            if i == value_start {
                return Err(escape_error_before(b, start, i)
                    .unwrap_or("URI parameter has '=' but no value"));
            }
        }
    }
    s.pos = i;
    let list = s.since(start);
    if escaped {
        // Every name and value: '%' is not a separator, so checking the
        // whole list checks each of them.
        check_escapes(list)?;
    }
    Ok(list)
}

/// An escape error in `b[start..end]`, which a parameter-by-parameter check
/// would report before a syntax error at `end`.
fn escape_error_before(b: &[u8], start: usize, end: usize) -> Option<&'static str> {
    let text = std::str::from_utf8(b.get(start..end)?).ok()?;
    check_escapes(text).err()
}

/// Every `%` must start a `%HH` escape (RFC 3261 §25.1 `escaped`).
pub(crate) fn check_escapes(s: &str) -> Result<(), &'static str> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(p) = b.get(i..).and_then(|r| crate::scan::find_byte(r, b'%')) {
        let at = i + p;
        match (b.get(at + 1), b.get(at + 2)) {
            (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i = at + 3,
            _ => return Err("'%' not followed by two hex digits"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(s: &str) -> Result<&str, &'static str> {
        let mut sc = Scanner::new(s);
        let r = scan_header_params(&mut sc)?;
        if !sc.at_end() {
            return Err("trailing");
        }
        Ok(r)
    }

    #[test]
    fn header_params_with_lws_and_quotes() {
        let raw = hp(" ; tag = abc ;x=\"a;b\";lr").unwrap();
        let p = Params(raw);
        assert_eq!(p.value("TAG"), Some("abc"));
        assert_eq!(p.value("x"), Some("\"a;b\""));
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.get("nope"), None);
        assert_eq!(p.iter().count(), 3);
    }

    #[test]
    fn empty_params_are_errors() {
        assert!(hp(";;a").is_err());
        assert!(hp(";a=").is_err());
        assert!(hp(";").is_err());
    }

    #[test]
    fn escapes() {
        assert!(check_escapes("a%20b").is_ok());
        assert!(check_escapes("a%2").is_err());
        assert!(check_escapes("a%zz").is_err());
        assert!(check_escapes("%").is_err());
    }
}
