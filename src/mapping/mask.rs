//! Display masking of personal data (GB/T 35273-2020): phone `138****1234`,
//! ID number first 6 and last 4, name `张*`.
//!
//! Phone numbers are normalised first (`+86`, `0086`, spaces, dashes and
//! brackets removed). A value that is already masked upstream (it holds `*`)
//! passes through unchanged, so masking is idempotent.

/// Strips `+86` / `0086` / `86-` prefixes and separators from a phone number.
pub fn normalize_phone(raw: &str) -> String {
    let compact: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '（' | '）' | '\u{3000}'))
        .collect();
    let rest = compact
        .strip_prefix("+86")
        .or_else(|| compact.strip_prefix("0086"))
        .unwrap_or(&compact);
    // A bare 86 before an 11-digit mobile number.
    let rest = match rest.strip_prefix("86") {
        Some(r) if r.len() == 11 && r.starts_with('1') => r,
        _ => rest,
    };
    rest.to_string()
}

pub fn mask_phone(raw: &str) -> String {
    if raw.contains('*') {
        return raw.trim().to_string();
    }
    let p = normalize_phone(raw);
    let chars: Vec<char> = p.chars().collect();
    let n = chars.len();
    if n >= 7 {
        let keep_tail = 4;
        let keep_head = 3;
        let mut out: String = chars[..keep_head].iter().collect();
        out.extend(std::iter::repeat_n('*', n - keep_head - keep_tail));
        out.extend(&chars[n - keep_tail..]);
        out
    } else {
        "*".repeat(n)
    }
}

pub fn mask_id(raw: &str) -> String {
    let s = raw.trim();
    if s.contains('*') {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    if n > 10 {
        let mut out: String = chars[..6].iter().collect();
        out.extend(std::iter::repeat_n('*', n - 10));
        out.extend(&chars[n - 4..]);
        out
    } else {
        "*".repeat(n)
    }
}

pub fn mask_name(raw: &str) -> String {
    let s = raw.trim();
    if s.contains('*') {
        return s.to_string();
    }
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => {
            let rest = chars.count().max(1);
            let mut out = first.to_string();
            out.extend(std::iter::repeat_n('*', rest));
            out
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_normalised_then_masked() {
        assert_eq!(mask_phone("13812341234"), "138****1234");
        assert_eq!(mask_phone("+86 138-1234-1234"), "138****1234");
        assert_eq!(mask_phone("0086 13812341234"), "138****1234");
        assert_eq!(mask_phone("8613812341234"), "138****1234");
        assert_eq!(mask_phone("0898-66123456"), "089*****3456");
        assert_eq!(mask_phone("138****1234"), "138****1234");
        assert_eq!(normalize_phone("+86 (138) 1234 1234"), "13812341234");
    }

    #[test]
    fn ids_and_names() {
        assert_eq!(mask_id("460100199001011234"), "460100********1234");
        assert_eq!(mask_id("46010019900101123X"), "460100********123X");
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_name("王"), "王*");
    }
}
