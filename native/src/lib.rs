//! The full load's per-line conversion in compiled code: one DynamoDB export line (Ion text or
//! DynamoDB JSON) to the canonical Extended JSON line `convert.convert_lines` writes, baseline mark
//! included. It covers the shapes DynamoDB writes and answers `None` for anything else (unusual
//! syntax, values DynamoDB cannot hold, duplicate names, lone surrogates...), which the Python path
//! then converts or quarantines with its reason. tests/unit/test_native.py holds its output to the
//! Python path's, byte for byte.

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;
use pyo3::prelude::*;

/// DynamoDB's number limits and Decimal128's digits.
const DDB_DIGITS: usize = 38;
const DDB_MIN_ADJUSTED: i64 = -130;
const DDB_MAX_ADJUSTED: i64 = 125;
const DECIMAL128_DIGITS: usize = 34;
/// The Python mapping refuses deeper nesting (BSON's limit); such lines go to it for the reason.
const MAX_DEPTH: usize = 90;

/// A number as sign, significant digits (no leading or trailing zeros; empty for zero) and scale:
/// value = digits x 10^scale.
#[derive(Clone, PartialEq, Eq)]
struct Num {
    neg: bool,
    digits: Vec<u8>,
    scale: i64,
}

enum Val {
    S(String),
    N(Num),
    B(Vec<u8>),
    Bool(bool),
    Null,
    M(Vec<(String, Val)>),
    L(Vec<Val>),
    SS(Vec<String>),
    NS(Vec<Num>),
    BS(Vec<Vec<u8>>),
}

fn normalize(neg: bool, whole: &[u8], fraction: &[u8], exponent: i64) -> Num {
    let all: Vec<u8> = whole.iter().chain(fraction.iter()).copied().collect();
    let start = all.iter().position(|&c| c != b'0').unwrap_or(all.len());
    let digits = &all[start..];
    let end = digits.iter().rposition(|&c| c != b'0').map_or(0, |i| i + 1);
    let significant = digits[..end].to_vec();
    if significant.is_empty() {
        return Num {
            neg: false,
            digits: significant,
            scale: 0,
        };
    }
    let scale = exponent - fraction.len() as i64 + (digits.len() - significant.len()) as i64;
    Num {
        neg,
        digits: significant,
        scale,
    }
}

impl Num {
    fn adjusted(&self) -> i64 {
        self.scale + self.digits.len() as i64 - 1
    }

    /// Within DynamoDB's range (zero always is).
    fn storable(&self) -> bool {
        self.digits.is_empty()
            || (self.digits.len() <= DDB_DIGITS
                && (DDB_MIN_ADJUSTED..=DDB_MAX_ADJUSTED).contains(&self.adjusted()))
    }

    fn int64(&self) -> Option<i64> {
        if self.digits.is_empty() {
            return Some(0);
        }
        if self.scale < 0 || self.digits.len() as i64 + self.scale > 19 {
            return None;
        }
        let mut value: i128 = 0;
        for &c in &self.digits {
            value = value * 10 + (c - b'0') as i128;
        }
        for _ in 0..self.scale {
            value *= 10;
        }
        if self.neg {
            value = -value;
        }
        i64::try_from(value).ok()
    }

    /// `str(decimal.Decimal)` of the value: the General Decimal Arithmetic to-scientific-string.
    fn decimal_text(&self, out: &mut String) {
        let digits = std::str::from_utf8(&self.digits).unwrap_or("");
        if self.neg {
            out.push('-');
        }
        let left = self.scale + digits.len() as i64;
        if self.scale <= 0 && left > -6 {
            if self.scale == 0 {
                out.push_str(digits);
            } else if left <= 0 {
                out.push_str("0.");
                for _ in 0..(-left) {
                    out.push('0');
                }
                out.push_str(digits);
            } else {
                out.push_str(&digits[..left as usize]);
                out.push('.');
                out.push_str(&digits[left as usize..]);
            }
            return;
        }
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exponent = left - 1;
        out.push('E');
        out.push(if exponent < 0 { '-' } else { '+' });
        out.push_str(&exponent.abs().to_string());
    }

    /// `canonical.canonical_number`: integers in full, other values as Decimal writes them.
    fn canonical(&self, out: &mut String) {
        if self.digits.is_empty() {
            out.push('0');
        } else if self.scale >= 0 {
            if self.neg {
                out.push('-');
            }
            out.push_str(std::str::from_utf8(&self.digits).unwrap_or(""));
            for _ in 0..self.scale {
                out.push('0');
            }
        } else {
            self.decimal_text(out);
        }
    }

    fn cmp_value(&self, other: &Num) -> std::cmp::Ordering {
        let sign = |n: &Num| {
            if n.digits.is_empty() {
                0
            } else if n.neg {
                -1
            } else {
                1
            }
        };
        let (a, b) = (sign(self), sign(other));
        if a != b || a == 0 {
            return a.cmp(&b);
        }
        let magnitude = self.adjusted().cmp(&other.adjusted()).then_with(|| {
            let width = self.digits.len().max(other.digits.len());
            let padded = |d: &Vec<u8>| {
                let mut p = d.clone();
                p.resize(width, b'0');
                p
            };
            padded(&self.digits).cmp(&padded(&other.digits))
        });
        if a < 0 {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

/// `types._plain_number`'s grammar (what DynamoDB JSON's N strings hold); other spellings -> None.
fn plain_number(text: &[u8]) -> Option<Num> {
    let mut i = 0;
    let mut neg = false;
    if i < text.len() && (text[i] == b'+' || text[i] == b'-') {
        neg = text[i] == b'-';
        i += 1;
    }
    let whole_start = i;
    while i < text.len() && text[i].is_ascii_digit() {
        i += 1;
    }
    let whole = &text[whole_start..i];
    let mut fraction: &[u8] = &[];
    if i < text.len() && text[i] == b'.' {
        i += 1;
        let start = i;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
        fraction = &text[start..i];
    }
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut exponent: i64 = 0;
    if i < text.len() && (text[i] == b'e' || text[i] == b'E') {
        i += 1;
        let mut negative = false;
        if i < text.len() && (text[i] == b'+' || text[i] == b'-') {
            negative = text[i] == b'-';
            i += 1;
        }
        let start = i;
        while i < text.len() && text[i].is_ascii_digit() {
            exponent = exponent * 10 + (text[i] - b'0') as i64;
            i += 1;
        }
        if i == start || i - start > 9 {
            return None;
        }
        if negative {
            exponent = -exponent;
        }
    }
    if i != text.len() {
        return None;
    }
    Some(normalize(neg, whole, fraction, exponent))
}

/// An Ion int or decimal token as `export.ion._number` reads it; tokens it leaves to amazon-ion -> None.
fn ion_number(token: &[u8]) -> Option<Num> {
    let mut i = 0;
    let neg = token.first() == Some(&b'-');
    if neg {
        i += 1;
    }
    let whole_start = i;
    match token.get(i) {
        Some(b'0') => i += 1,
        Some(c) if c.is_ascii_digit() => {
            while i < token.len() && token[i].is_ascii_digit() {
                i += 1;
            }
        }
        _ => return None,
    }
    let whole = &token[whole_start..i];
    let mut fraction: Option<&[u8]> = None;
    if i < token.len() && token[i] == b'.' {
        i += 1;
        let start = i;
        while i < token.len() && token[i].is_ascii_digit() {
            i += 1;
        }
        fraction = Some(&token[start..i]);
    }
    let mut exponent: Option<i64> = None;
    if i < token.len() && (token[i] == b'd' || token[i] == b'D') {
        i += 1;
        let mut negative = false;
        if i < token.len() && (token[i] == b'+' || token[i] == b'-') {
            negative = token[i] == b'-';
            i += 1;
        }
        let start = i;
        let mut value: i64 = 0;
        while i < token.len() && token[i].is_ascii_digit() {
            value = value * 10 + (token[i] - b'0') as i64;
            i += 1;
        }
        if i == start || i - start > 4 {
            return None;
        }
        exponent = Some(if negative { -value } else { value });
    }
    if i != token.len() {
        return None;
    }
    let fraction_digits = fraction.unwrap_or(&[]);
    if fraction.is_some() || exponent.is_some() {
        // amazon-ion shortens decimals of more than 34 digits that end in zeros: those are its own.
        let all: Vec<u8> = whole
            .iter()
            .chain(fraction_digits.iter())
            .copied()
            .collect();
        let start = all.iter().position(|&c| c != b'0').unwrap_or(all.len());
        let significant = &all[start..];
        if significant.len() > 40
            || (significant.len() > DECIMAL128_DIGITS
                && significant[DECIMAL128_DIGITS..].iter().all(|&c| c == b'0'))
        {
            return None;
        }
    }
    Some(normalize(
        neg,
        whole,
        fraction_digits,
        exponent.unwrap_or(0),
    ))
}

fn base64_value(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some((c - b'A') as u32),
        b'a'..=b'z' => Some((c - b'a' + 26) as u32),
        b'0'..=b'9' => Some((c - b'0' + 52) as u32),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// `base64.b64decode(text, validate=True)` for whole quanta with at most two padding characters.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let data_len = text.len() - text.iter().rev().take_while(|&&c| c == b'=').count();
    if text.len() - data_len > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &c in &text[..data_len] {
        buffer = (buffer << 6) | base64_value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8], out: &mut String) {
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        out.push(BASE64[(n >> 18) as usize & 63] as char);
        out.push(BASE64[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            BASE64[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            BASE64[n as usize & 63] as char
        } else {
            '='
        });
    }
}

fn no_duplicates(names: &[(String, Val)]) -> Option<()> {
    if names.len() > 1 {
        let mut seen: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
        seen.sort_unstable();
        if seen.windows(2).any(|w| w[0] == w[1]) {
            return None;
        }
    }
    Some(())
}

/// Code units from escapes, with UTF-16 surrogate pairs made into one character as the Ion reader does.
fn push_code(out: &mut String, pending_high: &mut Option<u32>, code: u32) -> Option<()> {
    if let Some(high) = pending_high.take() {
        if (0xDC00..=0xDFFF).contains(&code) {
            out.push(char::from_u32(
                0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00),
            )?);
            return Some(());
        }
        return None;
    }
    if (0xD800..=0xDBFF).contains(&code) {
        *pending_high = Some(code);
        return Some(());
    }
    out.push(char::from_u32(code)?);
    Some(())
}

/// What both readers need to read a comma-separated sequence.
trait Cursor {
    /// The next significant byte (DynamoDB JSON skips whitespace; the Ion subset has none).
    fn next_byte(&mut self) -> Option<u8>;
    fn bump(&mut self);
}

/// Elements separated by commas up to `close`: the opening bracket is read, the closing one is read here.
fn sequence<C: Cursor, T>(
    cursor: &mut C,
    close: u8,
    mut element: impl FnMut(&mut C) -> Option<T>,
) -> Option<Vec<T>> {
    let mut values = Vec::new();
    if cursor.next_byte()? == close {
        cursor.bump();
        return Some(values);
    }
    loop {
        values.push(element(cursor)?);
        match cursor.next_byte()? {
            c if c == close => {
                cursor.bump();
                return Some(values);
            }
            b',' => cursor.bump(),
            _ => return None,
        }
    }
}

// ---- Ion text ------------------------------------------------------------------------------------

struct Ion<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Ion<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    /// The text of a quoted string or symbol, `export.ion._text`'s escapes; the quote is at `self.i`.
    fn quoted(&mut self, quote: u8) -> Option<String> {
        self.i += 1;
        let mut out = String::new();
        let mut high: Option<u32> = None;
        loop {
            let start = self.i;
            while self.i < self.s.len() && !matches!(self.s[self.i], b'"' | b'\'' | b'\\' | b'\n') {
                self.i += 1;
            }
            if self.i > start {
                if high.is_some() {
                    return None;
                }
                out.push_str(std::str::from_utf8(&self.s[start..self.i]).ok()?);
            }
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'\n' => return None,
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    let hex = |ion: &mut Ion, n: usize| -> Option<u32> {
                        let digits = ion.s.get(ion.i..ion.i + n)?;
                        ion.i += n;
                        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16)
                            .ok()
                            .filter(|_| digits.iter().all(|d| d.is_ascii_hexdigit()))
                    };
                    let code = match e {
                        b'x' => hex(self, 2)?,
                        b'u' => hex(self, 4)?,
                        b'U' => {
                            let value = hex(self, 8)?;
                            if value > 0x10FFFF || (0xD800..=0xDFFF).contains(&value) {
                                return None;
                            }
                            value
                        }
                        b'a' => 0x07,
                        b'b' => 0x08,
                        b't' => 0x09,
                        b'n' => 0x0A,
                        b'f' => 0x0C,
                        b'r' => 0x0D,
                        b'v' => 0x0B,
                        b'0' => 0,
                        b'?' | b'\'' | b'"' | b'/' | b'\\' => e as u32,
                        _ => return None,
                    };
                    push_code(&mut out, &mut high, code)?;
                }
                q if q == quote => {
                    return if high.is_some() { None } else { Some(out) };
                }
                other => {
                    if high.is_some() {
                        return None;
                    }
                    out.push(other as char);
                }
            }
        }
    }

    /// A field name and its colon: an identifier, or a quoted string or symbol.
    fn name(&mut self) -> Option<String> {
        let name = match self.peek()? {
            q @ (b'"' | b'\'') => self.quoted(q)?,
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                let start = self.i;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_alphanumeric()
                        || self.s[self.i] == b'_'
                        || self.s[self.i] == b'$')
                {
                    self.i += 1;
                }
                let name = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                let symbol_id = name.len() > 1
                    && name.starts_with('$')
                    && name[1..].bytes().all(|b| b.is_ascii_digit());
                if symbol_id || matches!(name, "true" | "false" | "null" | "nan") {
                    return None;
                }
                name.to_string()
            }
            _ => return None,
        };
        self.expect(b':')?;
        if self.peek() == Some(b':') {
            return None;
        }
        Some(name)
    }

    fn token_end(&self) -> bool {
        matches!(self.peek(), Some(b',' | b'}' | b']'))
    }

    fn number(&mut self) -> Option<Num> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric()
                || matches!(self.s[self.i], b'_' | b'.' | b'+' | b'-'))
        {
            self.i += 1;
        }
        ion_number(&self.s[start..self.i])
    }

    fn blob(&mut self) -> Option<Vec<u8>> {
        self.i += 2;
        let start = self.i;
        while self.i < self.s.len() && !matches!(self.s[self.i], b'{' | b'}') {
            self.i += 1;
        }
        let data = base64_decode(&self.s[start..self.i])?;
        self.expect(b'}')?;
        self.expect(b'}')?;
        Some(data)
    }

    fn keyword(&mut self, word: &[u8]) -> bool {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<Val> {
        if depth > MAX_DEPTH {
            return None;
        }
        let value = match self.peek()? {
            b'"' => Val::S(self.quoted(b'"')?),
            b'-' | b'0'..=b'9' => Val::N(self.number()?),
            b'{' if self.s.get(self.i + 1) == Some(&b'{') => Val::B(self.blob()?),
            b'{' => Val::M(self.structure(depth + 1)?),
            b'[' => {
                self.i += 1;
                Val::L(sequence(self, b']', |ion| ion.value(depth + 1))?)
            }
            b't' if self.keyword(b"true") => Val::Bool(true),
            b'f' if self.keyword(b"false") => Val::Bool(false),
            b'n' if self.keyword(b"null") => Val::Null,
            b'$' => self.set()?,
            _ => return None,
        };
        if !self.token_end() {
            return None;
        }
        Some(value)
    }

    fn set(&mut self) -> Option<Val> {
        let kind = if self.keyword(b"$dynamodb_SS::[") {
            b'S'
        } else if self.keyword(b"$dynamodb_NS::[") {
            b'N'
        } else if self.keyword(b"$dynamodb_BS::[") {
            b'B'
        } else {
            return None;
        };
        Some(match kind {
            b'S' => Val::SS(sequence(self, b']', |ion| {
                if ion.peek()? == b'"' {
                    ion.quoted(b'"')
                } else {
                    None
                }
            })?),
            b'N' => Val::NS(sequence(self, b']', |ion| {
                if matches!(ion.peek()?, b'-' | b'0'..=b'9') {
                    ion.number()
                } else {
                    None
                }
            })?),
            _ => Val::BS(sequence(self, b']', |ion| {
                if ion.s[ion.i..].starts_with(b"{{") {
                    ion.blob()
                } else {
                    None
                }
            })?),
        })
    }

    /// A struct's fields; `self.i` is at its `{`.
    fn structure(&mut self, depth: usize) -> Option<Vec<(String, Val)>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        let fields = sequence(self, b'}', |ion| {
            let name = ion.name()?;
            Some((name, ion.value(depth)?))
        })?;
        no_duplicates(&fields)?;
        Some(fields)
    }
}

impl Cursor for Ion<'_> {
    fn next_byte(&mut self) -> Option<u8> {
        self.peek()
    }

    fn bump(&mut self) {
        self.i += 1;
    }
}

fn read_ion(line: &[u8]) -> Option<Vec<(String, Val)>> {
    std::str::from_utf8(line).ok()?;
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    let body = line[..end]
        .strip_prefix(b"$ion_1_0 ")
        .unwrap_or(&line[..end]);
    let mut ion = Ion { s: body, i: 0 };
    if ion.peek() != Some(b'{') {
        return None;
    }
    let top = ion.structure(0)?;
    if ion.i != body.len() {
        return None;
    }
    top.into_iter()
        .find(|(name, _)| name == "Item")
        .and_then(|(_, item)| match item {
            Val::M(fields) => Some(fields),
            _ => None,
        })
}

// ---- DynamoDB JSON -------------------------------------------------------------------------------

struct Json<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Json<'a> {
    fn space(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        self.space();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.space();
        self.s.get(self.i).copied()
    }

    fn string(&mut self) -> Option<String> {
        self.expect(b'"')?;
        let mut out = String::new();
        let mut high: Option<u32> = None;
        loop {
            let start = self.i;
            while self.i < self.s.len()
                && !matches!(self.s[self.i], b'"' | b'\\')
                && self.s[self.i] >= 0x20
            {
                self.i += 1;
            }
            if self.i > start {
                if high.is_some() {
                    return None;
                }
                out.push_str(std::str::from_utf8(&self.s[start..self.i]).ok()?);
            }
            let c = *self.s.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return if high.is_some() { None } else { Some(out) },
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    let code = match e {
                        b'"' | b'\\' | b'/' => e as u32,
                        b'b' => 0x08,
                        b'f' => 0x0C,
                        b'n' => 0x0A,
                        b'r' => 0x0D,
                        b't' => 0x09,
                        b'u' => {
                            let digits = self.s.get(self.i..self.i + 4)?;
                            if !digits.iter().all(|d| d.is_ascii_hexdigit()) {
                                return None;
                            }
                            self.i += 4;
                            u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?
                        }
                        _ => return None,
                    };
                    push_code(&mut out, &mut high, code)?;
                }
                _ => return None,
            }
        }
    }

    fn attribute(&mut self, depth: usize) -> Option<Val> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.expect(b'{')?;
        let kind = self.string()?;
        self.expect(b':')?;
        let value = match kind.as_str() {
            "S" => Val::S(self.string()?),
            "N" => Val::N(plain_number(self.string()?.as_bytes())?),
            "B" => Val::B(base64_decode(self.string()?.as_bytes())?),
            "BOOL" => {
                self.space();
                if self.s[self.i..].starts_with(b"true") {
                    self.i += 4;
                    Val::Bool(true)
                } else if self.s[self.i..].starts_with(b"false") {
                    self.i += 5;
                    Val::Bool(false)
                } else {
                    return None;
                }
            }
            "NULL" => {
                self.space();
                if !self.s[self.i..].starts_with(b"true") {
                    return None;
                }
                self.i += 4;
                Val::Null
            }
            "M" => Val::M(self.map(depth + 1)?),
            "L" => Val::L(self.array(|json| json.attribute(depth + 1))?),
            "SS" => Val::SS(self.array(|json| json.string())?),
            "NS" => Val::NS(self.array(|json| plain_number(json.string()?.as_bytes()))?),
            "BS" => Val::BS(self.array(|json| base64_decode(json.string()?.as_bytes()))?),
            _ => return None,
        };
        self.expect(b'}')?;
        Some(value)
    }

    fn array<T>(&mut self, element: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.expect(b'[')?;
        sequence(self, b']', element)
    }

    fn map(&mut self, depth: usize) -> Option<Vec<(String, Val)>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.expect(b'{')?;
        let fields = sequence(self, b'}', |json| {
            let name = json.string()?;
            json.expect(b':')?;
            Some((name, json.attribute(depth)?))
        })?;
        no_duplicates(&fields)?;
        Some(fields)
    }
}

impl Cursor for Json<'_> {
    fn next_byte(&mut self) -> Option<u8> {
        self.peek()
    }

    fn bump(&mut self) {
        self.i += 1;
    }
}

fn read_ddbjson(line: &[u8]) -> Option<Vec<(String, Val)>> {
    let mut json = Json { s: line, i: 0 };
    json.expect(b'{')?;
    if json.string()? != "Item" {
        return None;
    }
    json.expect(b':')?;
    let item = json.map(0)?;
    json.expect(b'}')?;
    json.space();
    if json.i != line.len() {
        return None;
    }
    Some(item)
}

// ---- the mapping and its Extended JSON -----------------------------------------------------------

/// `json.encoder.encode_basestring_ascii`, as canonical Extended JSON is written.
fn ascii_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{:04x}", unit));
                }
            }
        }
    }
    out.push('"');
}

/// `names.encode_name`.
fn stored_name(name: &str, top_level: bool) -> std::borrow::Cow<'_, str> {
    let needs = name.is_empty()
        || name.starts_with('$')
        || name.starts_with('%')
        || name.contains('.')
        || name.contains('\0')
        || (top_level && (name == "_id" || name == "_ddb"));
    if !needs {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut encoded = String::with_capacity(name.len() + 4);
    encoded.push('%');
    for c in name.chars() {
        match c {
            '%' => encoded.push_str("%25"),
            '$' => encoded.push_str("%24"),
            '.' => encoded.push_str("%2E"),
            '\0' => encoded.push_str("%00"),
            _ => encoded.push(c),
        }
    }
    std::borrow::Cow::Owned(encoded)
}

#[derive(Clone)]
enum Step {
    Name(String),
    Index(usize),
}

struct Mapper {
    hints: Vec<(Vec<Step>, &'static str)>,
    path: Vec<Step>,
}

fn int_json(value: i64, out: &mut String) {
    if (i32::MIN as i64..=i32::MAX as i64).contains(&value) {
        out.push_str(&format!("{{\"$numberInt\": \"{}\"}}", value));
    } else {
        out.push_str(&format!("{{\"$numberLong\": \"{}\"}}", value));
    }
}

fn binary_json(data: &[u8], out: &mut String) {
    out.push_str("{\"$binary\": {\"base64\": \"");
    base64_encode(data, out);
    out.push_str("\", \"subType\": \"00\"}}");
}

impl Mapper {
    /// `types.number_to_value`: int64, Decimal128, or (35 to 38 digits) the decimal text with an N hint.
    fn number(&mut self, n: &Num, out: &mut String, hinted: bool) -> Option<()> {
        if !n.storable() {
            return None;
        }
        if let Some(value) = n.int64() {
            int_json(value, out);
        } else if n.digits.len() <= DECIMAL128_DIGITS {
            out.push_str("{\"$numberDecimal\": \"");
            n.decimal_text(out);
            out.push_str("\"}");
        } else {
            let mut text = String::new();
            n.decimal_text(&mut text);
            ascii_string(&text, out);
            if hinted {
                self.hints.push((self.path.clone(), "N"));
            }
        }
        Some(())
    }

    fn value(&mut self, v: &Val, out: &mut String) -> Option<()> {
        match v {
            Val::S(s) => ascii_string(s, out),
            Val::N(n) => self.number(n, out, true)?,
            Val::B(b) => binary_json(b, out),
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::Null => out.push_str("null"),
            Val::M(fields) => self.map(fields, out)?,
            Val::L(values) => joined(
                out,
                '[',
                ']',
                ", ",
                values.iter().enumerate(),
                |out, (index, value)| {
                    self.path.push(Step::Index(index));
                    self.value(value, out)?;
                    self.path.pop();
                    Some(())
                },
            )?,
            Val::SS(strings) => {
                distinct(strings, |a, b| a.cmp(b))?;
                joined(out, '[', ']', ", ", strings, |out, s| {
                    ascii_string(s, out);
                    Some(())
                })?;
                self.hints.push((self.path.clone(), "SS"));
            }
            Val::NS(numbers) => {
                distinct(numbers, Num::cmp_value)?;
                // Set elements carry no hint of their own: the set's NS hint covers them.
                joined(out, '[', ']', ", ", numbers, |out, n| {
                    self.number(n, out, false)
                })?;
                self.hints.push((self.path.clone(), "NS"));
            }
            Val::BS(blobs) => {
                distinct(blobs, |a, b| a.cmp(b))?;
                joined(out, '[', ']', ", ", blobs, |out, b| {
                    binary_json(b, out);
                    Some(())
                })?;
                self.hints.push((self.path.clone(), "BS"));
            }
        }
        Some(())
    }

    fn map(&mut self, fields: &[(String, Val)], out: &mut String) -> Option<()> {
        joined(out, '{', '}', ", ", fields, |out, (name, value)| {
            let stored = stored_name(name, false);
            ascii_string(&stored, out);
            out.push_str(": ");
            self.path.push(Step::Name(stored.into_owned()));
            self.value(value, out)?;
            self.path.pop();
            Some(())
        })
    }
}

/// `items` written by `write` between `open` and `close`, separated by `separator`.
fn joined<T>(
    out: &mut String,
    open: char,
    close: char,
    separator: &str,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut String, T) -> Option<()>,
) -> Option<()> {
    out.push(open);
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            out.push_str(separator);
        }
        write(out, item)?;
    }
    out.push(close);
    Some(())
}

/// A set's elements in order, or None for an empty set or one holding an element twice: DynamoDB has
/// neither, and the Python path quarantines them.
fn distinct<T>(elements: &[T], order: impl Fn(&T, &T) -> std::cmp::Ordering) -> Option<Vec<&T>> {
    let mut sorted: Vec<&T> = elements.iter().collect();
    sorted.sort_by(|a, b| order(a, b));
    if sorted.is_empty() || sorted.windows(2).any(|w| order(w[0], w[1]).is_eq()) {
        return None;
    }
    Some(sorted)
}

// ---- the content hash of the baseline mark -------------------------------------------------------

/// What json.dumps(ensure_ascii=False) and msgspec write for a string: only quotes, backslashes and
/// control characters escaped.
fn hash_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            _ => out.push(c),
        }
    }
    out.push('"');
}

fn hex(data: &[u8], out: &mut String) {
    out.push_str("{\"$b\":\"");
    for b in data {
        out.push_str(&format!("{:02x}", b));
    }
    out.push_str("\"}");
}

/// `canonical.content_hash`'s text: the canonical item with sorted names, binary as hex.
fn hash_value(v: &Val, out: &mut String) -> Option<()> {
    match v {
        Val::S(s) => {
            out.push_str("{\"S\":");
            hash_string(s, out);
            out.push('}');
        }
        Val::N(n) => {
            out.push_str("{\"N\":\"");
            n.canonical(out);
            out.push_str("\"}");
        }
        Val::B(b) => {
            out.push_str("{\"B\":");
            hex(b, out);
            out.push('}');
        }
        Val::Bool(b) => out.push_str(if *b {
            "{\"BOOL\":true}"
        } else {
            "{\"BOOL\":false}"
        }),
        Val::Null => out.push_str("{\"NULL\":true}"),
        Val::M(fields) => {
            out.push_str("{\"M\":");
            hash_map(fields, out)?;
            out.push('}');
        }
        Val::L(values) => {
            out.push_str("{\"L\":");
            joined(out, '[', ']', ",", values, |out, value| {
                hash_value(value, out)
            })?;
            out.push('}');
        }
        Val::SS(strings) => {
            out.push_str("{\"SS\":");
            joined(
                out,
                '[',
                ']',
                ",",
                distinct(strings, |a, b| a.cmp(b))?,
                |out, s| {
                    hash_string(s, out);
                    Some(())
                },
            )?;
            out.push('}');
        }
        Val::NS(numbers) => {
            out.push_str("{\"NS\":");
            joined(
                out,
                '[',
                ']',
                ",",
                distinct(numbers, Num::cmp_value)?,
                |out, n| {
                    out.push('"');
                    n.canonical(out);
                    out.push('"');
                    Some(())
                },
            )?;
            out.push('}');
        }
        Val::BS(blobs) => {
            out.push_str("{\"BS\":");
            joined(
                out,
                '[',
                ']',
                ",",
                distinct(blobs, |a, b| a.cmp(b))?,
                |out, b| {
                    hex(b, out);
                    Some(())
                },
            )?;
            out.push('}');
        }
    }
    Some(())
}

fn hash_map(fields: &[(String, Val)], out: &mut String) -> Option<()> {
    // Python orders names by code point, which is the order of their UTF-8 bytes.
    let mut sorted: Vec<&(String, Val)> = fields.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    joined(out, '{', '}', ",", sorted, |out, (name, value)| {
        hash_string(name, out);
        out.push(':');
        hash_value(value, out)
    })
}

fn content_hash(item: &[(String, Val)]) -> Option<String> {
    let mut text = String::new();
    hash_map(item, &mut text)?;
    let mut hasher = Blake2bVar::new(12).expect("12 bytes is a valid BLAKE2b output size");
    hasher.update(text.as_bytes());
    let mut digest = [0u8; 12];
    hasher
        .finalize_variable(&mut digest)
        .expect("the buffer has the output size");
    Some(digest.iter().map(|b| format!("{:02x}", b)).collect())
}

// ---- the document --------------------------------------------------------------------------------

fn document_line(
    item: &[(String, Val)],
    key_attrs: &[String],
    key_fields: &[String],
) -> Option<String> {
    let mut ids = Vec::with_capacity(key_attrs.len());
    for name in key_attrs {
        let (_, value) = item.iter().find(|(n, _)| n == name)?;
        let mut text = String::new();
        let mut scratch = Mapper {
            hints: Vec::new(),
            path: Vec::new(),
        };
        match value {
            Val::S(_) | Val::N(_) | Val::B(_) => scratch.value(value, &mut text)?,
            _ => return None,
        }
        ids.push(text);
    }
    let mut out = String::with_capacity(512);
    out.push_str("{\"_id\": ");
    if ids.len() == 1 {
        out.push_str(&ids[0]);
    } else {
        joined(
            &mut out,
            '{',
            '}',
            ", ",
            key_fields.iter().zip(&ids),
            |out, (field, id)| {
                ascii_string(field, out);
                out.push_str(": ");
                out.push_str(id);
                Some(())
            },
        )?;
    }
    let mut mapper = Mapper {
        hints: Vec::new(),
        path: Vec::new(),
    };
    for (name, value) in item {
        let stored = stored_name(name, true);
        out.push_str(", ");
        ascii_string(&stored, &mut out);
        out.push_str(": ");
        mapper.path.push(Step::Name(stored.into_owned()));
        mapper.value(value, &mut out)?;
        mapper.path.pop();
    }
    out.push_str(", \"_ddb\": {");
    if !mapper.hints.is_empty() {
        out.push_str("\"t\": ");
        joined(
            &mut out,
            '[',
            ']',
            ", ",
            &mapper.hints,
            |out, (path, kind)| {
                out.push_str("{\"p\": ");
                joined(out, '[', ']', ", ", path, |out, step| {
                    match step {
                        Step::Name(name) => ascii_string(name, out),
                        Step::Index(i) => int_json(*i as i64, out),
                    }
                    Some(())
                })?;
                out.push_str(", \"t\": \"");
                out.push_str(kind);
                out.push_str("\"}");
                Some(())
            },
        )?;
        out.push_str(", ");
    }
    out.push_str("\"sync\": {\"src\": \"dynamodb\", \"h\": \"");
    out.push_str(&content_hash(item)?);
    out.push_str("\", \"seq\": \"\"}}}\n");
    Some(out)
}

/// Converts the lines of one export format for one key schema.
#[pyclass(frozen)]
struct LineConverter {
    ion: bool,
    key_attrs: Vec<String>,
    key_fields: Vec<String>,
}

#[pymethods]
impl LineConverter {
    #[new]
    fn new(export_format: &str, key_attrs: Vec<String>) -> PyResult<Self> {
        let ion = match export_format {
            "ION" => true,
            "DYNAMODB_JSON" => false,
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "unknown export format {other:?}"
                )))
            }
        };
        if key_attrs.is_empty() || key_attrs.len() > 2 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "a key has one or two attributes",
            ));
        }
        let key_fields = key_attrs
            .iter()
            .map(|n| stored_name(n, true).into_owned())
            .collect();
        Ok(LineConverter {
            ion,
            key_attrs,
            key_fields,
        })
    }

    /// The Extended JSON line (newline included) for one export line, or None to leave it to Python.
    fn convert(&self, py: Python<'_>, line: &[u8]) -> Option<String> {
        py.allow_threads(|| {
            let item = if self.ion {
                read_ion(line)?
            } else {
                read_ddbjson(line)?
            };
            document_line(&item, &self.key_attrs, &self.key_fields)
        })
    }
}

#[pymodule]
fn dynamo2mongo_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LineConverter>()
}
