//! The tokenizer of Data Prep calculated fields (a JEXL dialect).

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Str(String),
    Num(String),
    /// A name or a path (`a.b[0].c`), kept raw (escapes intact).
    Path(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Dot,
}

pub(super) fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('\\') => {
                        let e = *chars.get(i + 1).ok_or("unterminated string literal")?;
                        s.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            toks.push(Tok::Str(s));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            toks.push(Tok::Num(chars[start..i].iter().collect()));
            continue;
        }
        let path_start = c.is_alphabetic() || c == '_' || c == '$';
        if path_start {
            let start = i;
            let mut depth_brace = false;
            while i < chars.len() {
                let d = chars[i];
                if depth_brace {
                    if d == '}' {
                        depth_brace = false;
                    }
                    i += 1;
                } else if d == '$' && chars.get(i + 1) == Some(&'{') {
                    depth_brace = true;
                    i += 2;
                } else if d == '\\' && i + 1 < chars.len() {
                    i += 2;
                } else if d.is_alphanumeric()
                    || d == '_'
                    || d == '$'
                    || (d == '.'
                        && chars
                            .get(i + 1)
                            .is_some_and(|n| n.is_alphabetic() || *n == '_' || *n == '$'))
                {
                    i += 1;
                } else if d == '[' {
                    match chars[i..].iter().position(|&x| x == ']') {
                        Some(close) => i += close + 1,
                        None => return Err("unclosed `[`".into()),
                    }
                } else {
                    break;
                }
            }
            toks.push(Tok::Path(chars[start..i].iter().collect()));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op2 = ["==", "!=", "<=", ">=", "&&", "||", "->", "=~", "!~"]
            .into_iter()
            .find(|o| *o == two);
        if let Some(op) = op2 {
            toks.push(Tok::Op(op));
            i += 2;
            continue;
        }
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            '+' => Tok::Op("+"),
            '-' => Tok::Op("-"),
            '*' => Tok::Op("*"),
            '/' => Tok::Op("/"),
            '%' => Tok::Op("%"),
            '<' => Tok::Op("<"),
            '>' => Tok::Op(">"),
            '!' => Tok::Op("!"),
            '?' => Tok::Op("?"),
            ':' => Tok::Op(":"),
            '[' | '{' | ']' | '}' => {
                return Err(format!(
                    "`{c}`: array/object literals have no SQL translation here"
                ))
            }
            other => return Err(format!("unexpected character `{other}`")),
        };
        toks.push(tok);
        i += 1;
    }
    Ok(toks)
}
