//! How Glance's JSON deserializer names the import method of a body: Python's `json.loads` (via
//! `oslo_serialization.jsonutils`), then `body['method']['name']`.
//!
//! Python's `json` reads more than `serde_json` does: `NaN`, `Infinity` and `-Infinity`, numbers
//! of any magnitude (`1e400` is `inf`), lone UTF-16 surrogates (`"\ud800"`), and nesting deeper
//! than `serde_json`'s 128 levels. A body using any of these that names `glance-download` is an
//! import to Glance, so it must not be passed on as "not ours" because `serde_json` cannot read
//! it. This scanner accepts everything Python accepts (and a little more: no UTF-8 or
//! control-character checks, no depth limit), keeps the last of duplicate keys as a Python `dict`
//! does, and runs in constant stack space.

/// What Glance would take as `body['method']['name']`.
#[derive(Debug, Clone, PartialEq)]
pub enum MethodName {
    /// Not a JSON object with an object `method` holding a `name` (Glance answers 400 or 500).
    None,
    /// `name` is a string: its decoded bytes (a lone surrogate decodes to U+FFFD).
    Text(Vec<u8>),
    /// `name` is some other JSON value.
    Other,
}

/// Reads `body` as Python's `json.loads` would and returns its `method.name`.
pub fn method_name(body: &[u8]) -> MethodName {
    Scanner { input: body, at: 0 }
        .document()
        .unwrap_or(MethodName::None)
}

struct Scanner<'a> {
    input: &'a [u8],
    at: usize,
}

/// A container being read, and the role of the value inside it that is being read.
#[derive(Clone, Copy, PartialEq)]
enum Frame {
    Array,
    Object(Role),
}

/// Which object: the body, a top-level `method`, or any other.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Top,
    Method,
    Plain,
}

impl Scanner<'_> {
    fn document(&mut self) -> Option<MethodName> {
        // Whether the last top-level `method` is an object, and its last `name`.
        let mut method_is_object = false;
        let mut name = MethodName::None;
        let mut stack: Vec<Frame> = Vec::new();
        // What the next value is: the body itself, a `method`, its `name`, or anything else.
        let mut pending = Pending::Top;
        self.ws();
        loop {
            let opens = matches!(self.peek()?, b'{' | b'[');
            match (pending, self.peek()?) {
                (Pending::Method, b'{') => {
                    method_is_object = true;
                    name = MethodName::None;
                }
                (Pending::Method, _) => method_is_object = false,
                (Pending::Name, b'"') => {}
                (Pending::Name, _) => name = MethodName::Other,
                _ => {}
            }
            match self.peek()? {
                b'{' => {
                    self.at += 1;
                    let role = match pending {
                        Pending::Top => Role::Top,
                        Pending::Method => Role::Method,
                        _ => Role::Plain,
                    };
                    stack.push(Frame::Object(role));
                    self.ws();
                    if self.peek()? != b'}' {
                        pending = self.key(role)?;
                        continue;
                    }
                }
                b'[' => {
                    self.at += 1;
                    stack.push(Frame::Array);
                    self.ws();
                    if self.peek()? != b']' {
                        pending = Pending::Plain;
                        continue;
                    }
                }
                b'"' => {
                    let text = self.string()?;
                    if pending == Pending::Name {
                        name = MethodName::Text(text);
                    }
                }
                _ => self.scalar()?,
            }
            if opens {
                // An empty container: its closing bracket is next.
                self.at += 1;
                stack.pop();
            }
            match self.after_value(&mut stack)? {
                Some(next) => pending = next,
                None if method_is_object => return Some(name),
                None => return Some(MethodName::None),
            }
        }
    }

    /// After a value: a separator and what the next value is (`Some`), closing brackets, or the
    /// end of the document (`None`); `None` outside if the text there is not JSON.
    fn after_value(&mut self, stack: &mut Vec<Frame>) -> Option<Option<Pending>> {
        loop {
            self.ws();
            let Some(frame) = stack.last().copied() else {
                if self.at != self.input.len() {
                    return None;
                }
                return Some(None);
            };
            match (frame, self.peek()?) {
                (_, b',') => {
                    self.at += 1;
                    self.ws();
                    let next = match frame {
                        Frame::Array => Pending::Plain,
                        Frame::Object(role) => self.key(role)?,
                    };
                    return Some(Some(next));
                }
                (Frame::Array, b']') | (Frame::Object(_), b'}') => {
                    self.at += 1;
                    stack.pop();
                }
                _ => return None,
            }
        }
    }

    /// Reads `"key" :` inside an object and says what the value after it is.
    fn key(&mut self, role: Role) -> Option<Pending> {
        if self.peek()? != b'"' {
            return None;
        }
        let key = self.string()?;
        self.ws();
        if self.peek()? != b':' {
            return None;
        }
        self.at += 1;
        self.ws();
        Some(match (role, key.as_slice()) {
            (Role::Top, b"method") => Pending::Method,
            (Role::Method, b"name") => Pending::Name,
            _ => Pending::Plain,
        })
    }

    /// A string starting at `"`, decoded (escapes resolved; other bytes kept as they are).
    fn string(&mut self) -> Option<Vec<u8>> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let b = *self.input.get(self.at)?;
            self.at += 1;
            match b {
                b'"' => return Some(out),
                b'\\' => {
                    let e = *self.input.get(self.at)?;
                    self.at += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                other => out.push(other),
            }
        }
    }

    /// The code point of `\uXXXX` (the `\u` already read), joined with a following low
    /// surrogate escape as Python does; a lone surrogate is U+FFFD here.
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        if (0xd800..0xdc00).contains(&first)
            && self.input.get(self.at..self.at + 2) == Some(b"\\u".as_slice())
        {
            let save = self.at;
            self.at += 2;
            let second = self.hex4()?;
            if (0xdc00..0xe000).contains(&second) {
                let code = 0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00);
                return Some(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            self.at = save;
        }
        Some(char::from_u32(first).unwrap_or('\u{fffd}'))
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.input.get(self.at..self.at + 4)?;
        let text = std::str::from_utf8(digits).ok()?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.at += 4;
        u32::from_str_radix(text, 16).ok()
    }

    /// A number, `true`, `false`, `null`, `NaN`, `Infinity` or `-Infinity`.
    fn scalar(&mut self) -> Option<()> {
        for word in [
            &b"true"[..],
            b"false",
            b"null",
            b"NaN",
            b"Infinity",
            b"-Infinity",
        ] {
            if self.input[self.at..].starts_with(word) {
                self.at += word.len();
                return Some(());
            }
        }
        self.number()
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`, of any length.
    fn number(&mut self) -> Option<()> {
        if self.peek()? == b'-' {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.input.get(self.at) == Some(&b'.')
            && self.input.get(self.at + 1).is_some_and(u8::is_ascii_digit)
        {
            self.at += 1;
            self.digits();
        }
        if matches!(self.input.get(self.at), Some(b'e' | b'E')) {
            let mut next = self.at + 1;
            if matches!(self.input.get(next), Some(b'+' | b'-')) {
                next += 1;
            }
            if self.input.get(next).is_some_and(u8::is_ascii_digit) {
                self.at = next;
                self.digits();
            }
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.input.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
    }

    fn ws(&mut self) {
        while matches!(self.input.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }
}

/// The role of the value about to be read.
#[derive(Clone, Copy, PartialEq)]
enum Pending {
    Top,
    Method,
    Name,
    Plain,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(body: &str) -> MethodName {
        method_name(body.as_bytes())
    }

    fn text(t: &str) -> MethodName {
        MethodName::Text(t.as_bytes().to_vec())
    }

    #[test]
    fn reads_what_python_reads() {
        let gd = text("glance-download");
        for body in [
            r#"{"method": {"name": "glance-download"}}"#,
            " \t\r\n{\"method\":{\"name\":\"glance-download\"}} \n",
            r#"{"method": {"name": "glance\u002ddownload"}}"#,
            r#"{"method": {"name": "glance-download"}, "x": NaN}"#,
            r#"{"x": [Infinity, -Infinity, 1e400, -0.5E-7], "method": {"name": "glance-download"}}"#,
            r#"{"method": {"name": "glance-download", "y": "\ud800"}}"#,
            r#"{"method": {"name": "web-download", "name": "glance-download"}}"#,
            r#"{"method": {"name": "web-download"}, "method": {"name": "glance-download"}}"#,
            r#"{"method": {"x": {"name": "no"}, "name": "glance-download", "z": [{}, []]}}"#,
        ] {
            assert_eq!(name(body), gd, "{body}");
        }
        let deep = format!(
            r#"{{"method": {{"name": "glance-download"}}, "x": {}{}}}"#,
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert_eq!(name(&deep), gd);
        let big = format!(
            r#"{{"method": {{"name": "glance-download"}}, "x": {}}}"#,
            "9".repeat(400)
        );
        assert_eq!(name(&big), gd);
    }

    #[test]
    fn the_last_duplicate_wins() {
        assert_eq!(
            name(r#"{"method": {"name": "glance-download", "name": "web-download"}}"#),
            text("web-download")
        );
        assert_eq!(
            name(r#"{"method": {"name": "glance-download"}, "method": "x"}"#),
            MethodName::None
        );
        assert_eq!(
            name(r#"{"method": {"name": "glance-download", "name": 1}}"#),
            MethodName::Other
        );
        // A `name` elsewhere does not count.
        assert_eq!(
            name(r#"{"name": "glance-download", "method": {"x": {"name": "glance-download"}}}"#),
            MethodName::None
        );
    }

    #[test]
    fn refuses_what_python_refuses() {
        for body in [
            "",
            "\u{feff}{\"method\": {\"name\": \"glance-download\"}}",
            r#"{"method": {"name": "glance-download"},}"#,
            r#"{"method": {"name": "glance-download"}} x"#,
            r#"{'method': {'name': 'glance-download'}}"#,
            r#"{"method": {"name": "glance-download"}/*c*/}"#,
            r#"{"method": {"name": "glance-download"}, "x": 1.}"#,
            r#"{"method": {"name": "glance-download"}, "x": 01}"#,
            r#"{"method": {"name": "glance-download"}, "x": "\x"}"#,
            r#"{"method": {"name": "glance-download"}, "x": nan}"#,
            r#"{"method": {"name": "glance-download"}"#,
            r#"[{"method": {"name": "glance-download"}}]"#,
            "\u{a0}{\"method\": {\"name\": \"glance-download\"}}",
            "\u{c}{\"method\": {\"name\": \"glance-download\"}}",
        ] {
            assert_eq!(name(body), MethodName::None, "{body:?}");
        }
    }
}
