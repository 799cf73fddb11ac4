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
//! - the digest includes the window's bounds and the number of pairs; a
//!   source without a unique key that returns one key twice differs from
//!   the run's set, which holds each key once.
//!
//! The digest is order-free: each pair is hashed on its own (SHA-256 of the
//! key text and the watermark) and the hashes are added up, so a probe
//! checks a window of any size with one unsorted query, whatever order the
//! database returns the pairs in, and sorts nothing. The stored seal is
//! `<pairs>:<hex digest of the bounds, the count and the sum>`; the count
//! tells the probe how many rows to ask for (one more than sealed, or a
//! probe page if that is more: a window that grew past it is seen without
//! reading all of it).
//!
//! Memory is bounded: pairs that can no longer fall in the final window are
//! dropped as the position moves, and a window of more than [`MAX_PAIRS`]
//! pairs is not sealed at all (about 130 bytes a pair; the map is pruned
//! at twice what its last pruning kept, and never grows a quarter past the
//! cap: some 16 MB at most). What a run had to drop or could not confirm
//! is remembered as a *gap*, the highest watermark it may lack: a final
//! window that starts above the gap is still sealed (a busy hour that has
//! passed out of the look-back leaves the next quiet window sealable).
//!
//! An idle poll whose probe matched its seal commits nothing and writes no
//! new seal, so the pairs it vouched for are kept aside in a list and only
//! moved into the map if the run goes on to confirm anything else.

use std::cmp::Ordering;
use std::collections::HashMap;

use sha2::{Digest as _, Sha256};

use crate::value::Value;

/// The most pairs a seal covers. Past it a poll looks every key of its
/// window up again, as it does with no seal.
pub const MAX_PAIRS: usize = 100_000;

/// One pair's share of a seal: its SHA-256 as four words.
type PairHash = [u64; 4];

/// The pairs a run has confirmed against the row state, by key text.
pub struct Window {
    lookback: chrono::Duration,
    /// The most pairs a seal may cover.
    cap: usize,
    pairs: HashMap<String, (Value, PairHash), foldhash::fast::RandomState>,
    /// Pairs a matched seal vouched for, not yet moved into `pairs`.
    vouched: Vec<(String, Value, PairHash)>,
    /// The size at which pairs that fell below `floor` are dropped: twice
    /// what the last prune kept, so a first load that passes every row
    /// holds about twice its live window, not up to the cap.
    prune_at: usize,
    /// Pairs below this watermark cannot be in the final window.
    floor: Option<Value>,
    gap: Gap,
}

/// The pairs a run may lack: none, those at or below a watermark, or any.
#[derive(Debug, Clone, PartialEq)]
enum Gap {
    None,
    Through(Value),
    All,
}

impl Gap {
    /// Whether a pair at `wm` lies above the gap (a window from `wm` up
    /// lacks nothing).
    fn clears(&self, wm: &Value) -> bool {
        match self {
            Gap::None => true,
            Gap::Through(g) => cmp(wm, g) == Some(Ordering::Greater),
            Gap::All => false,
        }
    }
}

impl Window {
    pub fn new(lookback: chrono::Duration, cap: usize) -> Window {
        Window {
            lookback,
            cap,
            pairs: HashMap::default(),
            vouched: Vec::new(),
            prune_at: Self::prune_at(cap, 0),
            floor: None,
            gap: Gap::None,
        }
    }

    /// The row state now records this version of the row (key text and
    /// watermark). Cheap for a row that cannot be in the final window: a
    /// first load passes every row here.
    pub fn confirm(&mut self, key: &str, wm: &Value) {
        self.take_vouched();
        if self.takes(wm) {
            let h = pair_hash(key, wm);
            self.insert(key.to_string(), wm.clone(), h);
        }
    }

    /// The probe of window `[lo, hi]` read these (key, watermark) pairs:
    /// if they are exactly the pairs of the `stored` seal, every one is a
    /// version the row state records, and all are confirmed (kept aside
    /// until something else is). False (and nothing confirmed) otherwise.
    pub fn confirm_sealed(&mut self, stored: &str, lo: &Value, hi: &Value, probed: &[(Vec<Value>, Value)]) -> bool {
        if sealed_pairs(stored) != Some(probed.len()) {
            return false;
        }
        let mut tally = Tally::default();
        let hashed: Vec<(String, PairHash)> = probed
            .iter()
            .map(|(k, w)| {
                let t = crate::mapping::key_text_of(k);
                let h = pair_hash(&t, w);
                tally.add(&h);
                (t, h)
            })
            .collect();
        if tally.seal(lo, hi) != stored {
            return false;
        }
        self.take_vouched();
        self.vouched = hashed
            .into_iter()
            .zip(probed)
            .map(|((t, h), (_, w))| (t, w.clone(), h))
            .collect();
        true
    }

    /// Moves the pairs a matched seal vouched for into the map.
    fn take_vouched(&mut self) {
        if self.vouched.is_empty() {
            return;
        }
        let vouched = std::mem::take(&mut self.vouched);
        self.pairs.reserve(vouched.len().min(self.cap));
        for (t, w, h) in vouched {
            if self.takes(&w) {
                self.insert(t, w, h);
            }
        }
    }

    fn takes(&self, wm: &Value) -> bool {
        self.gap.clears(wm) && self.floor.as_ref().is_none_or(|f| cmp(wm, f) != Some(Ordering::Less))
    }

    fn insert(&mut self, key: String, wm: Value, hash: PairHash) {
        self.pairs.insert(key, (wm, hash));
        if self.pairs.len() > self.prune_at {
            self.prune();
        }
    }

    /// Never more than a quarter past the cap (a first load of rows that
    /// all share a recent watermark), never below 16,384 pairs (pruning is
    /// a pass over the map).
    fn prune_at(cap: usize, kept: usize) -> usize {
        let most = cap + cap / 4;
        (2 * kept).max(16_384).min(most)
    }

    /// The position reached `wm`: the final window starts no earlier than
    /// `wm − lookback`.
    pub fn advance(&mut self, wm: &Value) {
        self.floor = Some(crate::state::minus(wm, self.lookback));
    }

    /// Something this run read was not confirmed (a rejection, a key twice
    /// in one batch) at watermarks up to `through` (`None`: unknown, or
    /// not a watermark a window is cut by): no window that reaches down to
    /// it is sealed this time.
    pub fn spoil(&mut self, through: Option<&Value>) {
        self.take_vouched();
        self.gap = match (&self.gap, through) {
            (Gap::All, _) | (_, None) => Gap::All,
            (Gap::None, Some(t)) => Gap::Through(t.clone()),
            (Gap::Through(g), Some(t)) => newest([g, t]).map_or(Gap::All, |n| Gap::Through(n.clone())),
        };
        // What the gap covers can no longer be sealed; the rest stays.
        let gap = &self.gap;
        self.pairs.retain(|_, (w, _)| gap.clears(w));
    }

    fn prune(&mut self) {
        if let Some(f) = &self.floor {
            self.pairs.retain(|_, (w, _)| cmp(w, f) != Some(Ordering::Less));
        }
        if self.pairs.len() > self.cap {
            // More rows changed within the look-back than a seal covers:
            // all dropped, the newest of them marks the gap.
            let newest = newest(self.pairs.values().map(|(w, _)| w)).cloned();
            self.pairs = HashMap::default();
            self.spoil(newest.as_ref());
        }
        self.prune_at = Self::prune_at(self.cap, self.pairs.len());
    }

    /// The seal of the window `[lo, hi]`, if this run can vouch for it.
    pub fn seal(&mut self, lo: &Value, hi: &Value) -> Option<String> {
        self.take_vouched();
        if !self.gap.clears(lo) {
            return None;
        }
        let inside = |w: &Value| {
            matches!(cmp(w, lo), Some(Ordering::Greater | Ordering::Equal))
                && matches!(cmp(w, hi), Some(Ordering::Less | Ordering::Equal))
        };
        let mut tally = Tally::default();
        for (w, h) in self.pairs.values() {
            if inside(w) {
                tally.add(h);
            }
        }
        (tally.count <= self.cap as u64).then(|| tally.seal(lo, hi))
    }
}

/// A pair's hash: SHA-256 of the key text and of the watermark (its kind
/// and exact value: every nanosecond of a timestamp counts).
fn pair_hash(key: &str, wm: &Value) -> PairHash {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update([0x1f]);
    match wm {
        Value::Timestamp(t) => {
            let t = t.and_utc();
            h.update(b"t");
            h.update(t.timestamp().to_le_bytes());
            h.update(t.timestamp_subsec_nanos().to_le_bytes());
        }
        Value::Int(i) => {
            h.update(b"i");
            h.update(i.to_le_bytes());
        }
        other => {
            h.update(b"x");
            h.update(crate::state::wm_text(other).as_bytes());
        }
    }
    let d = h.finalize();
    std::array::from_fn(|i| u64::from_le_bytes(d[i * 8..i * 8 + 8].try_into().expect("8 bytes")))
}

/// The pairs of a window added up, in any order.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct Tally {
    count: u64,
    sum: PairHash,
}

impl Tally {
    fn add(&mut self, h: &PairHash) {
        self.count += 1;
        for (s, x) in self.sum.iter_mut().zip(h) {
            *s = s.wrapping_add(*x);
        }
    }

    /// The stored text of the seal of window `[lo, hi]` with these pairs.
    fn seal(&self, lo: &Value, hi: &Value) -> String {
        let mut h = Sha256::new();
        for b in [lo, hi] {
            h.update(crate::state::wm_text(b).as_bytes());
            h.update([0x1f]);
        }
        h.update(self.count.to_le_bytes());
        for s in self.sum {
            h.update(s.to_le_bytes());
        }
        format!("{}:{}", self.count, hex::encode(h.finalize()))
    }
}

/// How many pairs a stored seal covers; `None` for a seal this version
/// cannot read (one written before the digest was order-free): the probe
/// then looks every key up once and seals the window anew.
pub fn sealed_pairs(seal: &str) -> Option<usize> {
    let (count, digest) = seal.split_once(':')?;
    (digest.len() == 64).then_some(())?;
    count.parse().ok()
}

/// The highest of these watermarks; `None` for none, or for any that do
/// not compare (a NULL, a kind a probe does not take).
pub fn newest<'a>(ws: impl IntoIterator<Item = &'a Value>) -> Option<&'a Value> {
    let mut top: Option<&Value> = None;
    for w in ws {
        match top.map(|t| cmp(w, t)) {
            None | Some(Some(Ordering::Greater)) => top = Some(w),
            Some(Some(_)) => {}
            Some(None) => return None,
        }
    }
    top.filter(|t| cmp(t, t).is_some())
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

    /// What a probe that read these pairs would compute.
    fn probed(lo: &Value, hi: &Value, pairs: &[(&str, &Value)]) -> String {
        let mut tally = Tally::default();
        for (k, w) in pairs {
            tally.add(&pair_hash(k, w));
        }
        tally.seal(lo, hi)
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
        w.confirm("K2", &old);
        w.confirm("K2", &a);
        w.confirm("K3", &b);
        w.advance(&b);
        let lo = crate::state::minus(&b, chrono::Duration::minutes(10));
        let got = w.seal(&lo, &b).unwrap();
        assert_eq!(
            got,
            probed(&lo, &b, &[("K3", &b), ("K2", &a)]),
            "K1 is outside the window; K2 counts at its latest watermark"
        );
        assert_eq!(sealed_pairs(&got), Some(2));
        assert_ne!(
            got,
            probed(&lo, &b, &[("K2", &a), ("K3", &b), ("K4", &b)]),
            "a late row"
        );
        assert_ne!(got, probed(&lo, &b, &[("K2", &a), ("K3", &a)]), "a moved watermark");
        assert_ne!(
            got,
            probed(&lo, &b, &[("K2", &a), ("K3", &b), ("K3", &b)]),
            "a key twice"
        );
        let a_ns = t("2026-01-01 10:00:00.000001001");
        assert_ne!(got, probed(&lo, &b, &[("K2", &a_ns), ("K3", &b)]), "nanoseconds count");
        assert_ne!(got, probed(&lo, &a, &[("K2", &a), ("K3", &b)]), "bounds count");
        assert_ne!(
            got,
            probed(&lo, &b, &[("K2", &Value::Int(5)), ("K3", &b)]),
            "kinds count"
        );
    }

    #[test]
    fn a_seal_from_before_the_order_free_digest_is_not_read() {
        assert_eq!(sealed_pairs(&"ab".repeat(32)), None);
        assert_eq!(sealed_pairs("12:abc"), None);
        assert_eq!(sealed_pairs(&format!("x:{}", "ab".repeat(32))), None);
        assert_eq!(sealed_pairs(&format!("12:{}", "ab".repeat(32))), Some(12));
    }

    #[test]
    fn a_first_load_holds_about_its_live_window_not_the_cap() {
        // 200,000 rows a second apart pass through; the look-back window is
        // 10 s, so only a handful can be in the final window.
        let mut w = Window::new(chrono::Duration::seconds(10), MAX_PAIRS);
        let t0 = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        let mut last = Value::Null;
        for i in 0..200_000 {
            let wm = Value::Timestamp(t0 + chrono::Duration::seconds(i));
            w.confirm(&format!("K{i}"), &wm);
            w.advance(&wm);
            assert!(w.pairs.len() <= 16_385, "{} pairs held at row {i}", w.pairs.len());
            last = wm;
        }
        let lo = crate::state::minus(&last, chrono::Duration::seconds(10));
        let pairs: Vec<(String, Value)> = (199_989..200_000)
            .map(|i| (format!("K{i}"), Value::Timestamp(t0 + chrono::Duration::seconds(i))))
            .collect();
        let refs: Vec<(&str, &Value)> = pairs.iter().map(|(k, v)| (k.as_str(), v)).collect();
        assert_eq!(w.seal(&lo, &last), Some(probed(&lo, &last, &refs)));
    }

    #[test]
    fn a_spoiled_or_overfull_window_has_no_seal() {
        let x = t("2026-01-01 10:00:00");
        let mut w = Window::new(chrono::Duration::minutes(10), 3);
        w.confirm("K1", &x);
        w.spoil(None);
        w.confirm("K2", &x);
        assert_eq!(w.seal(&x, &x), None);
        let mut w = Window::new(chrono::Duration::minutes(10), 3);
        for k in ["K1", "K2", "K3", "K4", "K5", "K6", "K7"] {
            w.confirm(k, &x);
        }
        assert_eq!(w.seal(&x, &x), None, "more pairs than a seal covers");
    }

    #[test]
    fn a_window_above_what_a_run_could_not_confirm_is_still_sealed() {
        let lookback = chrono::Duration::minutes(10);
        let (busy, quiet) = (t("2026-01-01 10:00:00.000001"), t("2026-01-01 10:30:00.000002"));
        let lo = crate::state::minus(&quiet, lookback);
        // A busy window (more pairs than the cap) probed first, then the
        // run reads on to a quiet window twenty minutes later.
        let mut w = Window::new(lookback, 3);
        for k in ["K1", "K2", "K3", "K4", "K5", "K6", "K7"] {
            w.confirm(k, &busy);
        }
        w.confirm("K8", &quiet);
        w.advance(&quiet);
        assert_eq!(w.seal(&lo, &quiet), Some(probed(&lo, &quiet, &[("K8", &quiet)])));
        assert_eq!(
            w.seal(&busy, &quiet),
            None,
            "a window reaching down to the pairs it dropped"
        );

        // A batch with a rejection at `busy`: the same.
        let mut w = Window::new(lookback, 100);
        w.confirm("K1", &busy);
        w.spoil(Some(&busy));
        w.confirm("K2", &busy);
        w.confirm("K8", &quiet);
        w.advance(&quiet);
        assert_eq!(w.seal(&lo, &quiet), Some(probed(&lo, &quiet, &[("K8", &quiet)])));
        assert_eq!(w.seal(&busy, &quiet), None);
        w.spoil(Some(&busy));
        assert!(w.seal(&lo, &quiet).is_some(), "an older gap does not lower a newer one");
        w.spoil(Some(&Value::Int(3)));
        assert_eq!(w.seal(&lo, &quiet), None, "a watermark of another kind: no seal");
    }

    #[test]
    fn pairs_a_matched_seal_vouched_for_count_once_the_run_goes_on() {
        let lookback = chrono::Duration::minutes(10);
        let (a, b) = (t("2026-01-01 10:00:00.000001"), t("2026-01-01 10:01:00.000001"));
        let lo = crate::state::minus(&a, lookback);
        let stored = probed(&lo, &a, &[("K1", &a), ("K2", &a)]);
        let pairs = vec![
            (vec![Value::Text("K2".into())], a.clone()),
            (vec![Value::Text("K1".into())], a.clone()),
        ];
        let mut w = Window::new(lookback, 100);
        assert!(!w.confirm_sealed(&stored, &lo, &b, &pairs), "other bounds");
        assert!(!w.confirm_sealed(&stored, &lo, &a, &pairs[..1]), "a pair missing");
        assert!(w.confirm_sealed(&stored, &lo, &a, &pairs));
        assert!(w.pairs.is_empty(), "an idle poll builds no map");
        assert_eq!(w.seal(&lo, &a).as_deref(), Some(stored.as_str()));
        w.confirm("K3", &b);
        w.advance(&b);
        let lo_b = crate::state::minus(&b, lookback);
        assert_eq!(
            w.seal(&lo_b, &b),
            Some(probed(&lo_b, &b, &[("K1", &a), ("K2", &a), ("K3", &b)]))
        );
    }

    #[test]
    fn the_newest_watermark_is_none_when_any_does_not_compare() {
        let (a, b) = (t("2026-01-01 10:00:00"), t("2026-01-01 11:00:00"));
        assert_eq!(newest([&a, &b, &a]), Some(&b));
        assert_eq!(newest([&a, &Value::Null]), None);
        assert_eq!(newest([&Value::Null]), None);
        assert_eq!(newest(std::iter::empty()), None);
        assert_eq!(newest([&Value::Int(2), &Value::Int(9)]), Some(&Value::Int(9)));
    }
}
