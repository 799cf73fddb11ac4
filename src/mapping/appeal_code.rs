//! The Guangdong appeal-item classification code (诉求事项分类代码).
//!
//! Rules (DOMAIN.md, seed 003):
//! * the base code is ten digits, five levels of two digits (`00`–`99`);
//! * `99` on a level is that level's 'other' catch-all;
//! * `00` pads every level below the last subdivided one: once a level is
//!   `00`, every later level is `00`; level 1 is never `00`;
//! * levels six and deeper follow a `Z` in two-digit groups
//!   (`0102030405Z01`), and only when all five base levels are set.
//!
//! Partners send variants: spaces or dashes between levels, full-width digits
//! and `Ｚ`, lower-case `z`, and short codes that stop after the last
//! subdivided level (`0102` for `0102000000`). [`normalize`] accepts those
//! and rejects everything else with the exact reason.

use std::fmt;

/// A valid, normalised code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppealCode {
    /// Ten digits, `Z` and the extension groups when present.
    pub code: String,
    /// 1–5 for base codes, 6 and deeper with extension groups.
    pub level: usize,
}

impl AppealCode {
    /// The code of the parent level, `None` for a level-1 code.
    pub fn parent(&self) -> Option<String> {
        if self.level <= 1 {
            return None;
        }
        if self.level > 5 {
            let cut = self.code.len() - 2;
            let p = &self.code[..cut];
            return Some(p.trim_end_matches('Z').to_string());
        }
        let mut digits: Vec<u8> = self.code.as_bytes()[..10].to_vec();
        let i = (self.level - 1) * 2;
        digits[i] = b'0';
        digits[i + 1] = b'0';
        Some(String::from_utf8(digits).expect("ascii"))
    }

    /// The 'other' item one level down (`99` on the next level): where an
    /// appeal that belongs under this code but fits none of its children
    /// goes. Under a level-5 code that is the first extension level, `Z99`.
    pub fn other_child(&self) -> AppealCode {
        if self.level >= 5 {
            let sep = if self.level == 5 { "Z" } else { "" };
            return AppealCode {
                code: format!("{}{sep}99", self.code),
                level: self.level + 1,
            };
        }
        let mut digits = self.code.clone().into_bytes();
        digits[self.level * 2] = b'9';
        digits[self.level * 2 + 1] = b'9';
        AppealCode {
            code: String::from_utf8(digits).expect("ascii"),
            level: self.level + 1,
        }
    }

    /// Whether the last set level is `99`, the 'other' item.
    pub fn is_other(&self) -> bool {
        if self.level > 5 {
            return self.code.ends_with("99");
        }
        let i = (self.level - 1) * 2;
        &self.code[i..i + 2] == "99"
    }
}

impl fmt::Display for AppealCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code)
    }
}

/// Validates and normalises a partner's code. The error is the exact reason.
///
/// ```
/// use hotline_exchange::mapping::appeal_code::normalize;
/// assert_eq!(normalize("０１ ０２").unwrap().code, "0102000000");
/// assert!(normalize("0100020000").unwrap_err().contains("level 2 is `00` but level 3 is `02`"));
/// ```
pub fn normalize(raw: &str) -> Result<AppealCode, String> {
    let mut s = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '０'..='９' => s.push(char::from(b'0' + (c as u32 - '０' as u32) as u8)),
            'Ｚ' | 'ｚ' | 'z' => s.push('Z'),
            ' ' | '\u{3000}' | '\t' | '-' | '.' => {}
            c => s.push(c),
        }
    }
    if s.is_empty() {
        return Err("empty classification code".into());
    }
    let (base, ext) = match s.split_once('Z') {
        Some((b, e)) => (b.to_string(), Some(e.to_string())),
        None => (s.clone(), None),
    };
    if let Some(bad) = base.chars().find(|c| !c.is_ascii_digit()) {
        return Err(format!("`{raw}`: `{bad}` is not a digit"));
    }
    if base.len() % 2 != 0 {
        return Err(format!("`{raw}`: {} digits, expected two digits per level", base.len()));
    }
    if base.len() > 10 {
        return Err(format!(
            "`{raw}`: {} digits before any `Z`, the base code has ten",
            base.len()
        ));
    }
    let mut base = base;
    while base.len() < 10 {
        base.push_str("00");
    }
    let levels: Vec<&str> = (0..5).map(|i| &base[i * 2..i * 2 + 2]).collect();
    if levels[0] == "00" {
        return Err(format!("`{raw}`: level 1 is `00`"));
    }
    let mut depth = 5;
    for (i, l) in levels.iter().enumerate() {
        if *l == "00" {
            depth = i;
            if let Some(j) = levels[i..].iter().position(|x| *x != "00") {
                return Err(format!(
                    "`{raw}`: level {} is `00` but level {} is `{}` (`00` pads only the levels after the last subdivided one)",
                    i + 1,
                    i + j + 1,
                    levels[i + j]
                ));
            }
            break;
        }
    }
    let mut code = base;
    let mut level = depth;
    if let Some(ext) = ext {
        if depth < 5 {
            return Err(format!(
                "`{raw}`: levels after `Z` need all five base levels set, level {} is `00`",
                depth + 1
            ));
        }
        if ext.is_empty() || ext.len() % 2 != 0 || !ext.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("`{raw}`: after `Z` expected two-digit levels, found `{ext}`"));
        }
        let groups: Vec<&str> = (0..ext.len() / 2).map(|i| &ext[i * 2..i * 2 + 2]).collect();
        if let Some(p) = groups.iter().position(|g| *g == "00") {
            return Err(format!("`{raw}`: level {} after `Z` is `00`", 6 + p));
        }
        level = 5 + groups.len();
        code.push('Z');
        code.push_str(&ext);
    }
    Ok(AppealCode { code, level })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_valid_and_normalised() {
        let cases = [
            ("0102000000", "0102000000", 2),
            ("0102030405", "0102030405", 5),
            ("0102030405Z01", "0102030405Z01", 6),
            ("0102030405Z0103", "0102030405Z0103", 7),
            ("01", "0100000000", 1),
            ("0102", "0102000000", 2),
            ("01 02 03", "0102030000", 3),
            ("０１０２", "0102000000", 2),
            ("01-02-99", "0102990000", 3),
            ("0102030405z01", "0102030405Z01", 6),
            ("9900000000", "9900000000", 1),
        ];
        for (raw, want, level) in cases {
            let c = normalize(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!((c.code.as_str(), c.level), (want, level), "{raw}");
        }
    }

    #[test]
    fn golden_invalid_with_reason() {
        let cases = [
            ("0100020000", "level 2 is `00` but level 3 is `02`"),
            ("0000000000", "level 1 is `00`"),
            ("010", "two digits per level"),
            ("010203040506", "the base code has ten"),
            ("01020300Z01", "need all five base levels"),
            ("0102030405Z1", "two-digit levels"),
            ("0102030405Z", "two-digit levels"),
            ("01A2", "`A` is not a digit"),
            ("", "empty"),
        ];
        for (raw, reason) in cases {
            let e = normalize(raw).expect_err(raw);
            assert!(e.contains(reason), "{raw}: {e}");
        }
    }

    #[test]
    fn the_other_child_is_99_one_level_down() {
        let other = |c: &str| normalize(c).unwrap().other_child();
        assert_eq!((other("01").code.as_str(), other("01").level), ("0199000000", 2));
        assert_eq!(other("0102030000").code, "0102039900");
        assert_eq!(other("0102030405").code, "0102030405Z99");
        assert_eq!(other("0102030405Z01").code, "0102030405Z0199");
        for c in ["01", "0102030000", "0102030405", "0102030405Z01"] {
            let o = other(c);
            assert_eq!(normalize(&o.code).unwrap(), o, "{c}: the 'other' child is itself valid");
            assert_eq!(o.parent().as_deref(), Some(normalize(c).unwrap().code.as_str()));
            assert!(o.is_other());
        }
    }

    #[test]
    fn parent_and_other() {
        let c = normalize("0102990000").unwrap();
        assert_eq!(c.parent().as_deref(), Some("0102000000"));
        assert!(c.is_other());
        assert_eq!(normalize("01").unwrap().parent(), None);
        assert_eq!(
            normalize("0102030405Z01").unwrap().parent().as_deref(),
            Some("0102030405")
        );
        assert_eq!(
            normalize("0102030405Z0107").unwrap().parent().as_deref(),
            Some("0102030405Z01")
        );
    }
}
