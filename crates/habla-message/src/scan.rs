//! Byte-level scanning shared by every grammar in this crate (RFC 3261 §25.1).
//!
//! Everything works on positions into a `&str`; nothing allocates and nothing
//! can panic on any input: all reads are bounds-checked `get`s.

/// Character classes of RFC 3261 §25.1 as bit flags in one 256-entry table,
/// so that each test is a load and a mask.
pub(crate) mod class {
    /// `token`
    pub const TOKEN: u8 = 1;
    /// `unreserved` (alphanum / mark)
    pub const UNRESERVED: u8 = 2;
    /// generic-param value outside quotes: token / host (`:` `[` `]`)
    pub const PARAM_VALUE: u8 = 4;
    /// `user` characters besides escapes: unreserved / user-unreserved / `%`
    pub const USER: u8 = 8;
    /// `password` characters: unreserved / `&=+$,` / `%`
    pub const PASSWORD: u8 = 16;
    /// `paramchar`: param-unreserved / unreserved / `%`
    pub const URI_PARAM: u8 = 32;
    /// `hname`/`hvalue` characters and `=` `&`
    pub const URI_HEADER: u8 = 64;
    /// host name characters: alphanum / `-` `.` `_`
    pub const HOSTNAME: u8 = 128;
}

/// RFC 3261 §25.1 `word` characters (Call-ID), in a table of their own.
static WORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'!'
                    | b'%'
                    | b'*'
                    | b'_'
                    | b'+'
                    | b'`'
                    | b'\''
                    | b'~'
                    | b'('
                    | b')'
                    | b'<'
                    | b'>'
                    | b':'
                    | b'\\'
                    | b'"'
                    | b'/'
                    | b'['
                    | b']'
                    | b'?'
                    | b'{'
                    | b'}'
            );
        i += 1;
    }
    t
};

/// Whether `c` is a `word` character (RFC 3261 §25.1, Call-ID).
#[inline(always)]
pub(crate) fn is_word(c: u8) -> bool {
    WORD[c as usize]
}

/// `callid = word [ "@" word ]` (RFC 3261 §25.1). Sixteen octets at a time
/// where SSE2 classifies them (x86_64), one at a time elsewhere.
#[inline]
pub(crate) fn is_call_id(b: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_call_id_chunks(b)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        is_call_id_octets(b)
    }
}

/// [`is_call_id`] from the masks of 16 octets
/// ([`crate::simd::word_at_masks`]): every octet is a `word` character or
/// '@', there is at most one '@', and it is neither first nor last.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline]
fn is_call_id_chunks(b: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    if first == b'@' || last == b'@' {
        return false;
    }
    // The '@' masks ORed, and whether two '@' were seen (`count_ones`
    // is no instruction of the x86_64 baseline).
    let mut ats = 0u32;
    let mut two = false;
    let mut rest = b;
    while let Some((c, tail)) = rest.split_first_chunk::<16>() {
        let (word, at) = crate::simd::word_at_masks(c);
        if word | at != 0xffff {
            return false;
        }
        two |= (ats != 0 && at != 0) || at & at.wrapping_sub(1) != 0;
        ats |= at;
        rest = tail;
    }
    if !rest.is_empty() {
        // The last octets: the last 16 of `b` shifted down past the ones
        // already seen, or a zero-padded copy when `b` is that short (a
        // zero is neither `word` nor '@').
        let (word, at) = match b.last_chunk::<16>() {
            Some(c) => {
                let (w, a) = crate::simd::word_at_masks(c);
                let shift = 16 - rest.len();
                (w >> shift, a >> shift)
            }
            None => {
                let mut c = [0u8; 16];
                if let Some(dst) = c.get_mut(..rest.len()) {
                    dst.copy_from_slice(rest);
                }
                crate::simd::word_at_masks(&c)
            }
        };
        if word | at != (1 << rest.len()) - 1 {
            return false;
        }
        two |= (ats != 0 && at != 0) || at & at.wrapping_sub(1) != 0;
    }
    !two
}

/// [`is_call_id`] one octet at a time.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub(crate) fn is_call_id_octets(b: &[u8]) -> bool {
    let mut at = None;
    for (i, &c) in b.iter().enumerate() {
        if !is_word(c) {
            if c == b'@' && at.is_none() {
                at = Some(i);
            } else {
                return false;
            }
        }
    }
    match at {
        None => !b.is_empty(),
        Some(i) => i > 0 && i + 1 < b.len(),
    }
}

const fn build_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let alnum = c.is_ascii_alphanumeric();
        let mark = matches!(
            c,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        );
        let unreserved = alnum || mark;
        let token = alnum
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        let mut f = 0;
        if token {
            f |= class::TOKEN;
        }
        if unreserved {
            f |= class::UNRESERVED;
        }
        if token || matches!(c, b':' | b'[' | b']') {
            f |= class::PARAM_VALUE;
        }
        if unreserved
            || matches!(
                c,
                b'%' | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/'
            )
        {
            f |= class::USER;
        }
        if unreserved || matches!(c, b'%' | b'&' | b'=' | b'+' | b'$' | b',') {
            f |= class::PASSWORD;
        }
        if unreserved || matches!(c, b'%' | b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
            f |= class::URI_PARAM;
        }
        if unreserved
            || matches!(
                c,
                b'%' | b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'=' | b'&'
            )
        {
            f |= class::URI_HEADER;
        }
        if alnum || matches!(c, b'-' | b'.' | b'_') {
            f |= class::HOSTNAME;
        }
        t[i] = f;
        i += 1;
    }
    t
}

static CLASSES: [u8; 256] = CLASSES_CONST;

/// A class of octets as a table: `true` for the octets in it.
pub(crate) type Table = [bool; 256];

/// The octets of the classes of `mask` as a table.
const fn class_table(mask: u8) -> Table {
    class_table_except(mask, None)
}

/// [`class_table`] without the octet `except`.
pub(crate) const fn class_table_except(mask: u8, except: Option<u8>) -> Table {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let excluded = match except {
            Some(e) => e as usize == i,
            None => false,
        };
        t[i] = !excluded && CLASSES_CONST[i] & mask != 0;
        i += 1;
    }
    t
}

/// RFC 3261 §25.1 `token` characters.
pub(crate) static TOKEN: Table = class_table(class::TOKEN);

/// Characters of a generic-param value outside quotes (see
/// [`is_param_value`]).
pub(crate) static PARAM_VALUE: Table = class_table(class::PARAM_VALUE);

/// The end of the run of octets of `class` in `b` from `i`: the first
/// position at or after `i` whose octet is not in the class, or `b.len()`.
/// Eight octets per bounds check while eight are left (the runs of a SIP
/// message are a few to a few dozen octets long), then one at a time.
#[inline(always)]
pub(crate) fn run_end(b: &[u8], mut i: usize, class: &Table) -> usize {
    while let Some(c) = b.get(i..).and_then(|r| r.first_chunk::<8>()) {
        for (k, &x) in c.iter().enumerate() {
            if !class[usize::from(x)] {
                return i + k;
            }
        }
        i += 8;
    }
    while let Some(&x) = b.get(i) {
        if !class[usize::from(x)] {
            break;
        }
        i += 1;
    }
    i
}

const CLASSES_CONST: [u8; 256] = build_classes();

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Eight octets of `b` from `i`, little-endian, if there are eight.
#[inline(always)]
pub(crate) fn load8(b: &[u8], i: usize) -> Option<u64> {
    b.get(i..)?
        .first_chunk::<8>()
        .map(|c| u64::from_le_bytes(*c))
}

/// The host name at `b[i..]` (RFC 3261 `hostname` characters): its end, and
/// whether it holds two dots in a row. Sixteen octets at a time where SSE2
/// classifies them (x86_64), eight at a time by word arithmetic elsewhere.
#[inline]
pub(crate) fn host_name_end(b: &[u8], i: usize) -> (usize, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        host_name_end_chunks(b, i)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        host_name_end_words(b, i)
    }
}

/// [`host_name_end`] sixteen octets at a time (SSE2 on x86_64): the masks
/// of host characters and dots ([`crate::simd::host_masks`]) give the run
/// and its dot pairs (within the chunk, and across chunks by a carry).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline]
fn host_name_end_chunks(b: &[u8], mut i: usize) -> (usize, bool) {
    let mut pairs = 0u32;
    let mut carry = 0u32;
    loop {
        let rest = b.get(i..).unwrap_or(&[]);
        let (host, dots) = match rest.first_chunk::<16>() {
            Some(c) => crate::simd::host_masks(c),
            // Fewer than 16 octets left: the last 16 of `b` shifted down
            // (the octets past its end become zero bits), or a zero-padded
            // copy when `b` is that short.
            None => match b.last_chunk::<16>() {
                Some(c) => {
                    let (h, d) = crate::simd::host_masks(c);
                    let shift = 16 - rest.len();
                    (h >> shift, d >> shift)
                }
                None => {
                    let mut c = [0u8; 16];
                    if let Some(dst) = c.get_mut(..rest.len()) {
                        dst.copy_from_slice(rest);
                    }
                    crate::simd::host_masks(&c)
                }
            },
        };
        // `host` has 16 bits: the run is at most 16.
        let run = (!host).trailing_zeros();
        let d = dots & ((1u32 << run) - 1);
        pairs |= d & ((d << 1) | carry);
        if run < 16 {
            return (i + run as usize, pairs != 0);
        }
        carry = d >> 15;
        i += 16;
    }
}

/// Host name characters: 0 for others, 1 for alphanumerics, `-` and `_`,
/// 3 for `.`, so that one load tells both whether a character belongs to
/// the name and whether it is a dot.
static HOST: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = if c == b'.' {
            3
        } else if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            1
        } else {
            0
        };
        i += 1;
    }
    t
};

/// The high bit of each octet of `w` that is an ASCII letter, digit, `-` or
/// `.` (word arithmetic; no sum carries across octets).
#[inline(always)]
fn alnum_dash_dot(w: u64) -> u64 {
    let low = w & !HIGH;
    let folded = low | (0x20 * ONES);
    let letter = (folded + 0x1f * ONES) & !(folded + 0x05 * ONES);
    let digit = (low + 0x50 * ONES) & !(low + 0x46 * ONES);
    let dash_dot = (low + 0x53 * ONES) & !(low + 0x51 * ONES);
    (letter | digit | dash_dot) & !w & HIGH
}

/// [`host_name_end`] eight octets at a time by word arithmetic (targets
/// without SSE2), then octet by octet.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline]
fn host_name_end_words(b: &[u8], mut i: usize) -> (usize, bool) {
    let start = i;
    // Eight octets at a time over letters, digits, '-' and '.', with the
    // dots of the run checked for pairs (within a word and across words).
    let mut pairs = 0u64;
    let mut carry = 0u64;
    while let Some(w) = load8(b, i) {
        let run = ((!alnum_dash_dot(w) & HIGH).trailing_zeros() / 8) as usize;
        let in_run = if run == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * run)) - 1
        };
        let dots = !(((w & !HIGH) ^ (u64::from(b'.') * ONES)) + 0x7f * ONES) & !w & HIGH & in_run;
        pairs |= dots & ((dots << 8) | carry);
        carry = (dots >> 56) & 0x80;
        i += run;
        if run < 8 {
            break;
        }
    }
    // The rest ('_', or the last octets of `b`) one octet at a time.
    let mut prev = if i > start && b.get(i - 1) == Some(&b'.') {
        2u8
    } else {
        0
    };
    let mut double_dot = u8::from(pairs != 0);
    while let Some(&c) = b.get(i) {
        let k = HOST[c as usize];
        if k == 0 {
            break;
        }
        double_dot |= k & prev;
        prev = k & 2;
        i += 1;
    }
    (i, double_dot != 0)
}

/// Whether `c` is in every class of `mask`.
#[inline(always)]
pub(crate) fn is(c: u8, mask: u8) -> bool {
    CLASSES[c as usize] & mask != 0
}

/// RFC 3261 §25.1 `token` characters.
#[inline(always)]
pub(crate) fn is_token(c: u8) -> bool {
    is(c, class::TOKEN)
}

/// Characters allowed in a generic-param value outside quotes: `token` and
/// `host` (which brings `:`, `[` and `]` for IPv6 references).
#[inline(always)]
pub(crate) fn is_param_value(c: u8) -> bool {
    is(c, class::PARAM_VALUE)
}

/// A forward-only cursor over a header value or URI.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scanner<'a> {
    pub(crate) s: &'a str,
    pub(crate) pos: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Scanner { s, pos: 0 }
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    #[inline]
    pub(crate) fn peek_at(&self, n: usize) -> Option<u8> {
        self.s.as_bytes().get(self.pos + n).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    #[inline]
    pub(crate) fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The text from `start` to the cursor.
    pub(crate) fn since(&self, start: usize) -> &'a str {
        self.s.get(start..self.pos).unwrap_or("")
    }

    pub(crate) fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    /// Skips linear white space: SP, HTAB, and line folds (CRLF or LF
    /// followed by SP/HTAB), RFC 3261 §7.3.1.
    #[inline]
    pub(crate) fn skip_lws(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t') => self.pos += 1,
                Some(b'\r')
                    if self.peek_at(1) == Some(b'\n')
                        && matches!(self.peek_at(2), Some(b' ' | b'\t')) =>
                {
                    self.pos += 3
                }
                Some(b'\n') if matches!(self.peek_at(1), Some(b' ' | b'\t')) => self.pos += 2,
                _ => return,
            }
        }
    }

    /// Consumes bytes while `f` holds and returns them.
    #[inline(always)]
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        let b = self.s.as_bytes();
        while let Some(&c) = b.get(self.pos) {
            if !f(c) {
                break;
            }
            self.pos += 1;
        }
        // Stops only before an ASCII byte or at the end: a char boundary
        // whenever `f` accepts only ASCII.
        self.since(start)
    }

    /// `1*token-char`, or `None` if there is none.
    #[inline]
    pub(crate) fn token(&mut self) -> Option<&'a str> {
        let t = self.take_while(is_token);
        (!t.is_empty()).then_some(t)
    }

    /// A quoted-string including its quotes (RFC 3261 §25.1: quoted-pair is a
    /// backslash followed by any octet but CR and LF). `None` if the cursor is
    /// not at `"` or the string is not closed; the cursor is left unchanged
    /// then.
    pub(crate) fn quoted_string(&mut self) -> Option<&'a str> {
        let start = self.pos;
        if !self.eat(b'"') {
            return None;
        }
        let b = self.s.as_bytes();
        let mut i = self.pos;
        // From one quote or backslash to the next.
        while let Some(k) = b.get(i..).and_then(|r| memchr::memchr2(b'"', b'\\', r)) {
            let at = i + k;
            if b.get(at) == Some(&b'"') {
                self.pos = at + 1;
                return Some(self.since(start));
            }
            match b.get(at + 1) {
                Some(b'\r' | b'\n') | None => break,
                Some(_) => i = at + 2,
            }
        }
        self.pos = start;
        None
    }
}

/// Whether `b` holds SP or HTAB, eight octets at a time (the zero-octet
/// test on `w ^ SP` and `w ^ HTAB`: a borrow only flags octets above a true
/// zero, so "any" is exact).
#[inline]
pub(crate) fn has_sp_or_htab(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    for c in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        let w = u64::from_le_bytes(a);
        let sp = w ^ (u64::from(b' ') * ONES);
        let ht = w ^ (u64::from(b'\t') * ONES);
        if ((sp.wrapping_sub(ONES) & !sp) | (ht.wrapping_sub(ONES) & !ht)) & HIGH != 0 {
            return true;
        }
    }
    words.remainder().iter().any(|&c| c == b' ' || c == b'\t')
}

/// Position of the first `b` in `hay`. Header values are short: a plain
/// loop beats a SIMD search's set-up below a few dozen octets.
#[inline]
pub(crate) fn find_byte(hay: &[u8], b: u8) -> Option<usize> {
    if hay.len() < 64 {
        hay.iter().position(|&c| c == b)
    } else {
        memchr::memchr(b, hay)
    }
}

/// A header value with its line folds (CRLF followed by white space, RFC
/// 3261 §7.3.1) turned into plain white space, for writing it on one line.
pub(crate) fn unfold(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|c| c == b'\r' || c == b'\n') {
        s.chars()
            .filter(|&c| c != '\r' && c != '\n')
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

/// Removes the quotes and resolves quoted-pairs of a quoted-string; a string
/// without quotes is returned as it is. Allocates only when there is an
/// escape.
pub(crate) fn unquote(s: &str) -> std::borrow::Cow<'_, str> {
    let inner = match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner,
        None => return s.into(),
    };
    if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
        return inner.into();
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// Splits a header value at top-level commas (outside quoted strings and
/// `<...>`), RFC 3261 §7.3.1. Items are trimmed of LWS; an empty item is
/// returned as an empty string so that callers can reject it.
pub(crate) struct CommaItems<'a> {
    s: &'a str,
    pos: usize,
    done: bool,
}

pub(crate) fn comma_items(s: &str) -> CommaItems<'_> {
    CommaItems {
        s,
        pos: 0,
        done: false,
    }
}

impl<'a> Iterator for CommaItems<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.done {
            return None;
        }
        let b = self.s.as_bytes();
        let start = self.pos;
        let mut i = start;
        // Up to the first comma outside `<...>`; a quote anywhere (or a '<'
        // never closed) takes the exact scan below from the item's start.
        let mut exact = false;
        while let Some(&c) = b.get(i) {
            match c {
                b',' => break,
                b'"' => {
                    exact = true;
                    break;
                }
                b'<' => {
                    // Skip to the matching '>' unless a quote comes first.
                    let rest = b.get(i + 1..).unwrap_or(&[]);
                    match rest.iter().position(|&c| c == b'>' || c == b'"') {
                        Some(k) if rest.get(k) == Some(&b'>') => i += k + 2,
                        _ => {
                            exact = true;
                            break;
                        }
                    }
                }
                _ => i += 1,
            }
        }
        if exact {
            i = start;
            let mut in_quotes = false;
            let mut in_angle = false;
            while let Some(&c) = b.get(i) {
                match c {
                    b'\\' if in_quotes => i += 1,
                    b'"' => in_quotes = !in_quotes,
                    b'<' if !in_quotes => in_angle = true,
                    b'>' if !in_quotes => in_angle = false,
                    b',' if !in_quotes && !in_angle => break,
                    _ => {}
                }
                i += 1;
            }
        }
        let end = i.min(b.len());
        if end >= b.len() {
            self.done = true;
        } else {
            self.pos = end + 1;
        }
        Some(trim_lws(self.s.get(start..end).unwrap_or("")))
    }
}

/// Trims SP, HTAB, CR and LF from both ends.
#[inline]
pub(crate) fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let mut start = 0;
    while let Some(&c) = b.get(start) {
        if !matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            break;
        }
        start += 1;
    }
    let mut end = b.len();
    while end > start && matches!(b.get(end - 1), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        end -= 1;
    }
    // Both ends are next to ASCII bytes: character boundaries.
    s.get(start..end).unwrap_or("")
}

/// Parses a decimal number of at most `max` without overflow; `None` for
/// anything else (empty, non-digits, too large).
#[inline]
pub(crate) fn parse_u32(s: &str, max: u32) -> Option<u32> {
    parse_u32_bytes(s.as_bytes(), max)
}

/// [`parse_u32`] on octets.
#[inline]
pub(crate) fn parse_u32_bytes(b: &[u8], max: u32) -> Option<u32> {
    if b.is_empty() {
        return None;
    }
    // Leading zeros do not count towards the length limit.
    let mut v = 0u64;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
        if v > u64::from(max) {
            // Still reject later non-digits the same way: the value is too
            // large either way, and `None` is the answer for both.
            return None;
        }
    }
    Some(v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lws_includes_folds() {
        let mut s = Scanner::new(" \t\r\n  x");
        s.skip_lws();
        assert_eq!(s.rest(), "x");
        let mut s = Scanner::new(" \r\nx");
        s.skip_lws();
        assert_eq!(s.rest(), "\r\nx", "a CRLF not followed by WSP is not LWS");
    }

    #[test]
    fn quoted_strings() {
        let mut s = Scanner::new(r#""a \"b\" c" rest"#);
        assert_eq!(s.quoted_string(), Some(r#""a \"b\" c""#));
        assert_eq!(unquote(r#""a \"b\" c""#), r#"a "b" c"#);
        let mut s = Scanner::new(r#""never closed"#);
        assert_eq!(s.quoted_string(), None);
        assert_eq!(s.pos, 0);
        let mut s = Scanner::new("\"\\");
        assert_eq!(s.quoted_string(), None);
    }

    #[test]
    fn comma_split_respects_quotes_and_brackets() {
        let items: Vec<_> = comma_items(r#""a, b" <sip:x;p=1,2>;q=1 , <sip:y>,,"#).collect();
        assert_eq!(
            items,
            vec![r#""a, b" <sip:x;p=1,2>;q=1"#, "<sip:y>", "", ""]
        );
    }

    #[test]
    fn class_table_matches_the_grammar() {
        for c in 0..=255u8 {
            let alnum = c.is_ascii_alphanumeric();
            assert_eq!(
                is_token(c),
                alnum || b"-.!%*_+`'~".contains(&c),
                "token {c}"
            );
            assert_eq!(
                is(c, class::UNRESERVED),
                alnum || b"-_.!~*'()".contains(&c),
                "unreserved {c}"
            );
        }
    }

    #[test]
    fn host_table_matches_the_class() {
        for c in 0..=255u8 {
            let (end, _) = host_name_end(&[c], 0);
            assert_eq!(end == 1, is(c, class::HOSTNAME), "{c}");
            let (end, _) = host_name_end_words(&[c], 0);
            assert_eq!(end == 1, is(c, class::HOSTNAME), "{c}");
            let w = u64::from_le_bytes([c; 8]);
            let want = c.is_ascii_alphanumeric() || c == b'-' || c == b'.';
            assert_eq!(alnum_dash_dot(w) == HIGH, want, "{c}");
            assert_eq!(alnum_dash_dot(w) == 0, !want, "{c}");
        }
        assert_eq!(host_name_end(b"a.b..c d", 0), (6, true));
        assert_eq!(host_name_end(b"a.b.c;x", 0), (5, false));
        assert_eq!(host_name_end(b"..", 0), (2, true));
        assert_eq!(host_name_end(b".a.", 0), (3, false));
        // Against the octet-only definition, across word boundaries.
        let slow = |b: &[u8]| -> (usize, bool) {
            let n = b
                .iter()
                .position(|&c| !is(c, class::HOSTNAME))
                .unwrap_or(b.len());
            (n, b[..n].windows(2).any(|w| w == b".."))
        };
        let parts: [&[u8]; 10] = [
            b"a",
            b".",
            b"..",
            b"_",
            b"-",
            b"9",
            b"Z",
            b";",
            b"\xc3\xa9",
            b"example",
        ];
        let mut seed = 12345u64;
        for _ in 0..20000 {
            let mut v = Vec::new();
            // Up to about 60 octets: runs across the 16-octet chunks.
            for _ in 0..(seed % 24) {
                crate::scan::test_lcg::step(&mut seed);
                v.extend_from_slice(parts[(seed >> 33) as usize % parts.len()]);
            }
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            for start in 0..v.len().min(18) {
                let (n, dd) = slow(&v[start..]);
                for (e, d) in [
                    host_name_end_chunks(&v, start),
                    host_name_end_words(&v, start),
                ] {
                    assert_eq!(
                        (e - start, d),
                        (n, dd),
                        "{:?} from {start}",
                        String::from_utf8_lossy(&v)
                    );
                }
            }
        }
    }

    #[test]
    fn call_id_grammar() {
        let reference = |v: &[u8]| -> bool {
            let s = String::from_utf8_lossy(v);
            let (a, b) = s.split_once('@').unwrap_or((&s, "x"));
            !a.is_empty() && !b.is_empty() && a.bytes().all(is_word) && b.bytes().all(is_word)
        };
        let parts: [&[u8]; 14] = [
            b"a84b4c76e66710",
            b"@",
            b".",
            b"pc33",
            b" ",
            b"%",
            b"\xc3\xa9",
            b"{",
            b"#",
            b"|",
            b"~",
            b"\\",
            b"a84b4c76e66710@pc33.atlanta.example.com",
            b"0123456789abcdef",
        ];
        let mut seed = 99u64;
        for _ in 0..50000 {
            let mut v = Vec::new();
            for _ in 0..(seed % 9) {
                crate::scan::test_lcg::step(&mut seed);
                v.extend_from_slice(parts[(seed >> 33) as usize % parts.len()]);
            }
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            assert_eq!(
                is_call_id(&v),
                reference(&v),
                "{:?}",
                String::from_utf8_lossy(&v)
            );
            assert_eq!(is_call_id_octets(&v), reference(&v));
            assert_eq!(is_call_id_chunks(&v), reference(&v));
        }
    }

    #[test]
    fn runs_end_at_the_first_octet_outside_the_class() {
        let mut seed = 3u64;
        for _ in 0..20000 {
            crate::scan::test_lcg::step(&mut seed);
            let len = (seed >> 58) as usize;
            let b: Vec<u8> = (0..len)
                .map(|k| {
                    let r = (seed >> (k % 60)) as u8;
                    if r % 5 == 0 {
                        r
                    } else {
                        b'a' + r % 26
                    }
                })
                .collect();
            for i in 0..=len + 1 {
                for table in [&TOKEN, &PARAM_VALUE] {
                    let want = if i >= len {
                        i
                    } else {
                        b[i..]
                            .iter()
                            .position(|&c| !table[usize::from(c)])
                            .map_or(len, |p| i + p)
                    };
                    assert_eq!(run_end(&b, i, table), want, "{b:?} {i}");
                }
            }
        }
        for c in 0..=255u8 {
            assert_eq!(TOKEN[usize::from(c)], is_token(c));
            assert_eq!(PARAM_VALUE[usize::from(c)], is_param_value(c));
        }
    }

    #[test]
    fn sp_or_htab_anywhere() {
        for len in 0..40 {
            for at in 0..=len {
                for c in [
                    b' ',
                    b'\t',
                    b'!',
                    b'\x08',
                    b'\x0a',
                    b'\x1f',
                    b'\x21',
                    0xa0,
                    0x89,
                    0x20 ^ 0x80,
                ] {
                    let mut v = vec![b'a'; len];
                    if at < len {
                        v[at] = c;
                    }
                    let want = v.iter().any(|&c| c == b' ' || c == b'\t');
                    assert_eq!(has_sp_or_htab(&v), want, "{v:?}");
                }
            }
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32("0000000000000042", u32::MAX), Some(42));
        assert_eq!(parse_u32("4294967295", u32::MAX), Some(u32::MAX));
        assert_eq!(parse_u32("4294967296", u32::MAX), None);
        assert_eq!(parse_u32("99999999999999999999", u32::MAX), None);
        assert_eq!(parse_u32("", 9), None);
        assert_eq!(parse_u32("-1", 9), None);
        assert_eq!(parse_u32("70", 69), None);
        assert_eq!(parse_u32("7x", 69), None);
        assert_eq!(parse_u32("0", 0), Some(0));
    }
}

/// The pseudo-random sequence the crate's tests draw inputs from.
#[cfg(test)]
pub(crate) mod test_lcg {
    /// Advances `seed` one step (a 64-bit LCG, Knuth's MMIX constants).
    pub(crate) fn step(seed: &mut u64) {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
}
