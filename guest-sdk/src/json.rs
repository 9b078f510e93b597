//! Writing JSON by hand, for recipes' `inspect` output (no serde in a small component).

/// A JSON string literal.
pub fn string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON array of already-rendered items.
pub fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes() {
        assert_eq!(super::string("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
        assert_eq!(super::list(&["1".into(), "\"x\"".into()]), r#"[1, "x"]"#);
    }
}
