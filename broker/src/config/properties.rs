//! A reader for Java `.properties` text, the format of Kafka's `server.properties`.
//!
//! Supported, as in `java.util.Properties.load`: `key=value`, `key: value` and `key value`;
//! `#` and `!` comment lines; blank lines; a line ending in an odd number of backslashes
//! continues on the next line (whose leading whitespace is dropped); backslash escapes
//! (`\t`, `\n`, `\r`, `\f`, `\uXXXX`, and `\x` meaning `x`, so `\=`, `\:` and `\ ` can appear
//! in keys). Unlike Java, trailing whitespace of a value is trimmed too: a stray space after
//! `num.partitions=6 ` is a common copy-paste accident, and no Kafka property wants it.
//! A later line for the same key replaces an earlier one.

use super::ConfigError;

/// Parse properties text into `(key, value)` pairs in file order.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut pairs = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, first)) = lines.next() {
        let line_number = index + 1;
        let start = first.trim_start();
        if start.is_empty() || start.starts_with('#') || start.starts_with('!') {
            continue;
        }
        // Join continuation lines into one logical line.
        let mut logical = String::from(start);
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (raw_key, raw_value) = split_key_value(&logical);
        let key = unescape(raw_key, line_number)?;
        let value = unescape(raw_value, line_number)?;
        pairs.push((key, value.trim().to_string()));
    }
    Ok(pairs)
}

/// True if the line ends in an odd number of backslashes (an even number is escaped
/// backslashes, not a continuation).
fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// Split a logical line at the first unescaped `=`, `:` or whitespace. Whitespace around
/// the separator, and one `=`/`:` after whitespace, belong to neither side.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    for (position, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || c.is_whitespace() {
            key_end = position;
            break;
        }
    }
    let key = &line[..key_end];
    let mut rest = line[key_end..].trim_start();
    if let Some(stripped) = rest.strip_prefix(['=', ':']) {
        rest = stripped.trim_start();
    }
    (key, rest)
}

/// Resolve backslash escapes.
fn unescape(raw: &str, line: usize) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let decoded = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32);
                match decoded {
                    Some(decoded) => out.push(decoded),
                    None => {
                        return Err(ConfigError::Syntax {
                            line,
                            reason: format!("malformed \\u escape: \\u{hex}"),
                        })
                    }
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).expect("valid properties")
    }

    fn pair(key: &str, value: &str) -> (String, String) {
        (key.to_string(), value.to_string())
    }

    #[test]
    fn separators_comments_and_blank_lines() {
        let text = "# a comment\n\
                    ! another comment\n\
                    \n\
                    num.partitions=6\n\
                    \t  log.segment.bytes : 1048576  \n\
                    auto.create.topics.enable false\n\
                    message.max.bytes = 2000\r\n\
                    empty.value=\n";
        assert_eq!(
            pairs(text),
            vec![
                pair("num.partitions", "6"),
                pair("log.segment.bytes", "1048576"),
                pair("auto.create.topics.enable", "false"),
                pair("message.max.bytes", "2000"),
                pair("empty.value", ""),
            ]
        );
    }

    #[test]
    fn continuation_lines_are_joined() {
        let text = "listeners=PLAINTEXT://a:9092,\\\n    PLAINTEXT://b:9092\nnext=1\n";
        assert_eq!(
            pairs(text),
            vec![
                pair("listeners", "PLAINTEXT://a:9092,PLAINTEXT://b:9092"),
                pair("next", "1")
            ]
        );
        // An even number of backslashes is an escaped backslash, not a continuation.
        assert_eq!(
            pairs("path=C:\\\\\nx=1"),
            vec![pair("path", "C:\\"), pair("x", "1")]
        );
        // A continuation on the last line just ends the value.
        assert_eq!(pairs("a=b\\"), vec![pair("a", "b")]);
    }

    #[test]
    fn escapes_in_keys_and_values() {
        assert_eq!(
            pairs("my\\=key=va\\:lue\\u0041\nx=\\t1"),
            vec![pair("my=key", "va:lueA"), pair("x", "1")]
        );
        assert!(matches!(
            parse("ok=1\nbad=\\u00zz"),
            Err(ConfigError::Syntax { line: 2, .. })
        ));
    }

    #[test]
    fn value_may_contain_separators() {
        assert_eq!(
            pairs("advertised.listeners=PLAINTEXT://host:9092"),
            vec![pair("advertised.listeners", "PLAINTEXT://host:9092")]
        );
        assert_eq!(pairs("k==v"), vec![pair("k", "=v")]);
    }
}
