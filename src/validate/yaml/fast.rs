//! The fast reader: one document of the YAML subset manifests are written in (block mappings
//! and sequences, one-line flow collections, one-line plain and quoted scalars, comments) read
//! straight into a `Value`, the bench bundle in 13 ms against 37 ms through libyaml. Anything
//! else (anchors, tags, block scalars, scalars over several lines, tabs, directives, odd
//! indentation, syntax errors) is [`Unsupported`]: libyaml then reads that document. So what
//! the fast reader accepts it must read exactly as libyaml does, and what it does not
//! understand it never guesses at. The test `the_fast_reader_agrees_with_libyaml`
//! holds the two to the same values and errors on every YAML file of this repository and on
//! 20,000 mutations of them.

use serde_json::{Map, Value};

use super::{resolve, resolve_key};

/// The document is outside the subset (or not valid YAML): libyaml reads it.
#[derive(Debug)]
pub struct Unsupported;

type Fast<T> = Result<T, Unsupported>;

/// Nested collections, block and flow together: below the depth limit of the libyaml reading,
/// so that a document nested that deeply gets its error.
const DEPTH_LIMIT: usize = 100;

/// Characters that cannot start a plain scalar (or start one only in contexts left to libyaml).
const INDICATORS: &[u8] = b"-?:,[]{}#&*!|>'\"%@`";

/// One document's text (a `---` line first when `explicit`): `None` for an implicit document
/// with no content (a leading comment), which libyaml does not count as a document.
pub fn document(text: &str, explicit: bool) -> Fast<Option<Value>> {
    let ascii = text
        .bytes()
        .all(|b| b == b'\n' || (0x20..0x7f).contains(&b));
    if !ascii && !text.chars().all(printable) {
        return Err(Unsupported);
    }
    let mut lines = Vec::new();
    let mut rows = text.split('\n');
    if explicit {
        let marker = rows.next().unwrap_or_default();
        if !blank_or_comment(marker.strip_prefix("---").ok_or(Unsupported)?) {
            return Err(Unsupported);
        }
    }
    for row in rows {
        let text = row.trim_start_matches(' ');
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        // Directives and document markers are libyaml's.
        if row.starts_with('%') || row.starts_with("---") || row.starts_with("...") {
            return Err(Unsupported);
        }
        lines.push(Line {
            indent: row.len() - text.len(),
            text,
        });
    }
    let Some(first) = lines.first() else {
        return Ok(explicit.then_some(Value::Null));
    };
    let indent = first.indent;
    let mut reader = Reader {
        lines,
        at: 0,
        depth: 0,
    };
    let value = reader.block(indent)?;
    if reader.at != reader.lines.len() {
        return Err(Unsupported);
    }
    Ok(Some(value))
}

/// What libyaml accepts in a stream, less tabs, carriage returns, the other line breaks and
/// byte order marks (the fast reader leaves those to libyaml).
fn printable(c: char) -> bool {
    matches!(c,
        '\n'
        | '\u{20}'..='\u{7e}'
        | '\u{a0}'..='\u{2027}'
        | '\u{202a}'..='\u{d7ff}'
        | '\u{e000}'..='\u{fefe}'
        | '\u{ff00}'..='\u{fffd}'
        | '\u{10000}'..
    )
}

fn blank_or_comment(text: &str) -> bool {
    let rest = text.trim_start_matches(' ');
    rest.is_empty() || (rest.starts_with('#') && rest.len() < text.len())
}

struct Line<'t> {
    indent: usize,
    /// The line after its indentation.
    text: &'t str,
}

struct Reader<'t> {
    lines: Vec<Line<'t>>,
    /// The next line to read.
    at: usize,
    depth: usize,
}

fn is_entry(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

impl<'t> Reader<'t> {
    fn next_indent(&self) -> Option<usize> {
        self.lines.get(self.at).map(|line| line.indent)
    }

    /// The block collection starting at the current line, which is indented by `indent`.
    fn block(&mut self, indent: usize) -> Fast<Value> {
        self.depth += 1;
        if self.depth > DEPTH_LIMIT {
            return Err(Unsupported);
        }
        let text = self.lines[self.at].text;
        let value = if is_entry(text) {
            self.sequence(indent)
        } else if key(text)?.is_some() {
            self.mapping(indent)
        } else {
            Err(Unsupported)
        };
        self.depth -= 1;
        value
    }

    fn mapping(&mut self, indent: usize) -> Fast<Value> {
        let mut map = Map::new();
        while let Some(line) = self.lines.get(self.at).filter(|l| l.indent == indent) {
            let (key, rest) = key(line.text)?.ok_or(Unsupported)?;
            self.at += 1;
            let value = self.value(indent, rest, true)?;
            // A later duplicate key wins, as in libyaml's reading into a `Value`.
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }

    fn sequence(&mut self, indent: usize) -> Fast<Value> {
        let mut items = Vec::new();
        while let Some(line) = self
            .lines
            .get(self.at)
            .filter(|l| l.indent == indent && is_entry(l.text))
        {
            let after = &line.text[1..];
            let rest = after.trim_start_matches(' ');
            let column = indent + 1 + after.len() - rest.len();
            let compact =
                is_entry(rest) || (!rest.starts_with(['{', '[', '#']) && key(rest)?.is_some());
            if compact {
                // A compact collection (`- name: a`): the item's first line starts after `- `.
                self.lines[self.at] = Line {
                    indent: column,
                    text: rest,
                };
                items.push(self.block(column)?);
            } else {
                self.at += 1;
                items.push(self.value(indent, rest, false)?);
            }
        }
        Ok(Value::Array(items))
    }

    /// The value of an entry whose line (indented by `indent`) continues with `rest`.
    fn value(&mut self, indent: usize, rest: &'t str, in_mapping: bool) -> Fast<Value> {
        let rest = rest.trim_start_matches(' ');
        if rest.is_empty() || rest.starts_with('#') {
            return match self.next_indent() {
                Some(next) if next > indent => self.block(next),
                // `key:` followed by `- item` at the key's own indentation.
                Some(next)
                    if in_mapping && next == indent && is_entry(self.lines[self.at].text) =>
                {
                    self.sequence(indent)
                }
                _ => Ok(Value::Null),
            };
        }
        let value = inline(rest, self.depth)?;
        // A more indented line continues a scalar over several lines (or is an error).
        if self.next_indent().is_some_and(|next| next > indent) {
            return Err(Unsupported);
        }
        Ok(value)
    }
}

/// A block mapping's `key:` at the start of `text`: the key and the rest of the line after the
/// colon; `None` when the line is not a mapping entry.
fn key(text: &str) -> Fast<Option<(String, &str)>> {
    if text.starts_with(['"', '\'']) {
        let (key, after) = quoted(text)?;
        let after = after.trim_start_matches(' ');
        return Ok(match after.strip_prefix(':') {
            Some(rest) if rest.is_empty() || rest.starts_with(' ') => Some((key, rest)),
            Some(_) => return Err(Unsupported),
            None => None,
        });
    }
    let Some(colon) = value_colon(text) else {
        return Ok(None);
    };
    let key = text[..colon].trim_end_matches(' ');
    if key.is_empty()
        || starts_with_indicator(key)
        || key.contains(" #")
        || key.contains(['[', ']', '{', '}', ','])
    {
        return Err(Unsupported);
    }
    let key = resolve_key(key).map_err(|_| Unsupported)?;
    Ok(Some((key, &text[colon + 1..])))
}

/// The first `:` followed by a space or the end of the line.
fn value_colon(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find(|&i| bytes[i] == b':' && bytes.get(i + 1).is_none_or(|&b| b == b' '))
}

fn starts_with_indicator(text: &str) -> bool {
    match text.as_bytes() {
        // `-1`, `-c`: a dash followed by anything but a space starts a plain scalar.
        [b'-', next, ..] => matches!(next, b' ' | b',' | b'[' | b']' | b'{' | b'}'),
        [first, ..] => INDICATORS.contains(first),
        [] => false,
    }
}

/// A value written on its entry's line, `depth` collections deep: a one-line flow collection,
/// quoted or plain scalar, then nothing but a comment.
fn inline(text: &str, depth: usize) -> Fast<Value> {
    let (value, after) = match text.as_bytes()[0] {
        b'{' | b'[' => {
            let mut flow = Flow { text, at: 0, depth };
            let value = flow.node()?;
            (value, &text[flow.at..])
        }
        b'"' | b'\'' => {
            let (text, after) = quoted(text)?;
            (Value::String(text), after)
        }
        _ if starts_with_indicator(text) => return Err(Unsupported),
        _ => {
            let end = text.find(" #").unwrap_or(text.len());
            let scalar = text[..end].trim_end_matches(' ');
            if value_colon(scalar).is_some() {
                return Err(Unsupported);
            }
            (plain(scalar)?, &text[end..])
        }
    };
    if !blank_or_comment(after) {
        return Err(Unsupported);
    }
    Ok(value)
}

fn plain(text: &str) -> Fast<Value> {
    resolve(text, None, true).map_err(|_| Unsupported)
}

/// A one-line quoted scalar at the start of `text`, and what follows it.
fn quoted(text: &str) -> Fast<(String, &str)> {
    let mut chars = text.char_indices();
    let (_, quote) = chars.next().ok_or(Unsupported)?;
    let mut out = String::new();
    while let Some((at, c)) = chars.next() {
        match c {
            '\'' if quote == '\'' => {
                if text[at + 1..].starts_with('\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    return Ok((out, &text[at + 1..]));
                }
            }
            '"' if quote == '"' => return Ok((out, &text[at + 1..])),
            '\\' if quote == '"' => {
                let (_, escape) = chars.next().ok_or(Unsupported)?;
                out.push(match escape {
                    '\\' | '"' => escape,
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '0' => '\0',
                    'u' => {
                        let hex = text.get(at + 2..at + 6).ok_or(Unsupported)?;
                        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                            return Err(Unsupported);
                        }
                        let code = u32::from_str_radix(hex, 16).map_err(|_| Unsupported)?;
                        (0..4).for_each(|_| {
                            chars.next();
                        });
                        char::from_u32(code).ok_or(Unsupported)?
                    }
                    _ => return Err(Unsupported),
                });
            }
            _ => out.push(c),
        }
    }
    // The scalar goes on over the next line.
    Err(Unsupported)
}

/// A flow collection that opens and closes on one line.
struct Flow<'t> {
    text: &'t str,
    at: usize,
    depth: usize,
}

impl Flow<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    fn node(&mut self) -> Fast<Value> {
        self.skip_spaces();
        match self.peek() {
            Some(open @ (b'{' | b'[')) => {
                self.depth += 1;
                if self.depth > DEPTH_LIMIT {
                    return Err(Unsupported);
                }
                self.at += 1;
                let value = if open == b'{' {
                    self.mapping()
                } else {
                    self.sequence()
                }?;
                self.depth -= 1;
                Ok(value)
            }
            Some(b'"' | b'\'') => {
                let (text, after) = quoted(&self.text[self.at..])?;
                self.at = self.text.len() - after.len();
                Ok(Value::String(text))
            }
            _ => plain(self.scalar()?),
        }
    }

    /// A plain scalar inside a flow collection: up to a flow indicator.
    fn scalar(&mut self) -> Fast<&str> {
        let rest = &self.text[self.at..];
        let end = rest
            .find([',', '[', ']', '{', '}', ':', '#'])
            .ok_or(Unsupported)?;
        let scalar = rest[..end].trim_end_matches(' ');
        if scalar.is_empty() || starts_with_indicator(scalar) {
            return Err(Unsupported);
        }
        self.at += end;
        Ok(scalar)
    }

    /// After an item: `,` and more, or the closing bracket (a trailing comma is libyaml's).
    fn more(&mut self, close: u8) -> Fast<bool> {
        self.skip_spaces();
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                self.skip_spaces();
                match self.peek() {
                    Some(b',' | b']' | b'}') | None => Err(Unsupported),
                    Some(_) => Ok(true),
                }
            }
            Some(found) if found == close => {
                self.at += 1;
                Ok(false)
            }
            _ => Err(Unsupported),
        }
    }

    /// An empty collection: `close` (after spaces) is next, and is read.
    fn closes_empty(&mut self, close: u8) -> bool {
        self.skip_spaces();
        let empty = self.peek() == Some(close);
        if empty {
            self.at += 1;
        }
        empty
    }

    fn sequence(&mut self) -> Fast<Value> {
        let mut items = Vec::new();
        if self.closes_empty(b']') {
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.node()?);
            if !self.more(b']')? {
                return Ok(Value::Array(items));
            }
        }
    }

    fn mapping(&mut self) -> Fast<Value> {
        let mut map = Map::new();
        if self.closes_empty(b'}') {
            return Ok(Value::Object(map));
        }
        loop {
            let key = match self.peek() {
                Some(b'"' | b'\'') => {
                    let (key, after) = quoted(&self.text[self.at..])?;
                    self.at = self.text.len() - after.len();
                    self.skip_spaces();
                    key
                }
                _ => resolve_key(self.scalar()?).map_err(|_| Unsupported)?,
            };
            // `key: value` only: a key without a value, or a colon not followed by a space,
            // is libyaml's.
            if !self.text[self.at..].starts_with(": ") {
                return Err(Unsupported);
            }
            self.at += 2;
            self.skip_spaces();
            if matches!(self.peek(), Some(b',' | b'}') | None) {
                return Err(Unsupported);
            }
            let value = self.node()?;
            map.insert(key, value);
            if !self.more(b'}')? {
                return Ok(Value::Object(map));
            }
        }
    }
}
