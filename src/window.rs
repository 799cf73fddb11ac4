//! The seal of the look-back window: what lets an idle poll skip the state
//! lookups of its probe.
//!
//! Every poll probes the look-back window by (key, watermark) and looks each
//! key up in `hlx_row_state` to find the row versions it has not seen (see
//! `Run::probe` in `exchange.rs`). On a quiet source that lookup is the bulk
//! of an idle poll: one index probe per row changed in the last `lookback`,
//! every poll, for nothing.
//!
//! A run therefore collects, as it goes, the (key, watermark) pairs whose
//! version `hlx_row_state` is known to record: the pairs its probe found
//! seen, and the rows of every batch it committed without a rejection. At the
//! end it digests the pairs that fall in the window of its final position
//! (`[position − lookback, position]`) into a *seal*, stored beside the
//! position in `hlx_watermark.window_seal`. The next poll probes the same
//! window; if its pairs digest to the stored seal, every one of them is a
//! version already recorded, and the lookups are skipped.
//!
//! The seal can only ever be too cautious, never wrong:
//! - it covers a pair set in which every pair was checked against (or
//!   written to) the row state, and any write to the mapping's row state, or
//!   a move of its position, clears it in the same transaction
//!   (`State::save_checksums_tx`, `save_position_tx`, `forget_checksums`);
//! - a pair the run did not see or could not confirm (a late commit between
//!   two reads, a rejected row, a key read twice) is missing from the set or
//!   spoils it, so the next probe's pairs differ and it looks every key up;
//! - the digest includes the window's bounds and is taken over the pairs in
//!   byte order of their texts, whatever order a database returns them in.
//!
//! Memory is bounded: pairs that can no longer fall in the final window are
//! dropped as the position moves, and a window of more pairs than one probe
//! page is not sealed at all.

use std::cmp::Ordering;
use std::collections::HashMap;

use sha2::{Digest as _, Sha256};

use crate::value::Value;

/// The pairs a run has confirmed against the row state, by key text.
pub struct Window {
    lookback: chrono::Duration,
    /// The most pairs a seal may cover (one probe page).
    cap: usize,
    pairs: HashMap<String, (Value, String)>,
    /// Pairs below this watermark cannot be in the final window.
    floor: Option<Value>,
    spoiled: bool,
}

impl Window {
    pub fn new(lookback: chrono::Duration, cap: usize) -> Window {
        Window {
            lookback,
            cap,
            pairs: HashMap::new(),
            floor: None,
            spoiled: false,
        }
    }

    /// The row state now records this version of the row (key text and
    /// watermark). Cheap for a row that cannot be in the final window: a
    /// first load passes every row here.
    pub fn confirm(&mut self, key: &str, wm: &Value) {
        if self.takes(wm) {
            self.insert(key.to_string(), wm, crate::state::wm_text(wm));
        }
    }

    /// [`confirm`](Self::confirm) with the texts of the key and of the
    /// watermark ([`crate::state::wm_text`]) at hand.
    pub fn confirm_text(&mut self, key: String, wm: &Value, wm_text: String) {
        if self.takes(wm) {
            self.insert(key, wm, wm_text);
        }
    }

    fn takes(&self, wm: &Value) -> bool {
        !self.spoiled && self.floor.as_ref().is_none_or(|f| cmp(wm, f) != Some(Ordering::Less))
    }

    fn insert(&mut self, key: String, wm: &Value, wm_text: String) {
        self.pairs.insert(key, (wm.clone(), wm_text));
        if self.pairs.len() > 2 * self.cap {
            self.prune();
        }
    }

    /// The position reached `wm`: the final window starts no earlier than
    /// `wm − lookback`.
    pub fn advance(&mut self, wm: &Value) {
        self.floor = Some(crate::state::minus(wm, self.lookback));
    }

    /// Something this run read was not confirmed (a rejection, a key twice
    /// in one batch): no seal this time.
    pub fn spoil(&mut self) {
        self.spoiled = true;
        self.pairs = HashMap::new();
    }

    fn prune(&mut self) {
        if let Some(f) = &self.floor {
            self.pairs.retain(|_, (w, _)| cmp(w, f) != Some(Ordering::Less));
        }
        if self.pairs.len() > self.cap {
            // More rows changed within the look-back than one probe holds.
            self.spoil();
        }
    }

    /// The seal of the window `[lo, hi]`, if this run can vouch for it.
    pub fn seal(&self, lo: &Value, hi: &Value) -> Option<String> {
        if self.spoiled {
            return None;
        }
        let inside = |w: &Value| {
            matches!(cmp(w, lo), Some(Ordering::Greater | Ordering::Equal))
                && matches!(cmp(w, hi), Some(Ordering::Less | Ordering::Equal))
        };
        let pairs: Vec<(&str, &str)> = self
            .pairs
            .iter()
            .filter(|(_, (w, _))| inside(w))
            .map(|(k, (_, t))| (k.as_str(), t.as_str()))
            .collect();
        // The next probe must hold the whole window in one page.
        (pairs.len() < self.cap).then(|| seal(lo, hi, pairs))
    }
}

/// The digest of a window's bounds and (key text, watermark text) pairs, in
/// any order.
pub fn seal<'a>(lo: &Value, hi: &Value, mut pairs: Vec<(&'a str, &'a str)>) -> String {
    pairs.sort_unstable();
    let mut h = Sha256::new();
    for b in [lo, hi] {
        h.update(crate::state::wm_text(b).as_bytes());
        h.update([0x1f]);
    }
    for (k, w) in pairs {
        h.update(k.as_bytes());
        h.update([0x1f]);
        h.update(w.as_bytes());
        h.update([0x1e]);
    }
    hex::encode(h.finalize())
}

/// Watermark order (integers and timestamps, the kinds a probe takes).
fn cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(p), Value::Int(q)) => Some(p.cmp(q)),
        (Value::Timestamp(p), Value::Timestamp(q)) => Some(p.cmp(q)),
        (Value::TimestampTz(p), Value::TimestampTz(q)) => Some(p.cmp(q)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Value {
        Value::Timestamp(chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap())
    }

    #[test]
    fn the_seal_is_that_of_the_pairs_in_the_window_whatever_their_order() {
        let mut w = Window::new(chrono::Duration::minutes(10), 100);
        let (old, a, b) = (
            t("2026-01-01 09:00:00.000001"),
            t("2026-01-01 10:00:00.000001"),
            t("2026-01-01 10:05:00.5"),
        );
        w.confirm("K1", &old);
        w.confirm("K2", &a);
        w.confirm("K3", &b);
        w.advance(&b);
        let lo = crate::state::minus(&b, chrono::Duration::minutes(10));
        let got = w.seal(&lo, &b).unwrap();
        let (ta, tb) = (crate::state::wm_text(&a), crate::state::wm_text(&b));
        let (a, b_) = (ta.as_str(), tb.as_str());
        assert_eq!(
            got,
            seal(&lo, &b, vec![("K3", b_), ("K2", a)]),
            "K1 is outside the window"
        );
        assert_ne!(got, seal(&lo, &b, vec![("K2", a), ("K3", b_), ("K4", b_)]));
        assert_ne!(got, seal(&lo, &b, vec![("K2", a), ("K3", a)]));
        let ha = t("2026-01-01 10:00:00.000001");
        assert_ne!(got, seal(&lo, &ha, vec![("K2", a), ("K3", b_)]), "bounds count");
    }

    #[test]
    fn a_spoiled_or_overfull_window_has_no_seal() {
        let x = t("2026-01-01 10:00:00");
        let mut w = Window::new(chrono::Duration::minutes(10), 3);
        w.confirm("K1", &x);
        w.spoil();
        w.confirm("K2", &x);
        assert_eq!(w.seal(&x, &x), None);
        let mut w = Window::new(chrono::Duration::minutes(10), 3);
        for k in ["K1", "K2", "K3", "K4", "K5", "K6", "K7"] {
            w.confirm(k, &x);
        }
        assert_eq!(w.seal(&x, &x), None, "more pairs than one probe page");
    }
}
