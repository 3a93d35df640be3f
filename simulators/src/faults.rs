//! Labelled faults of the device physics (issue 6): a fault of some kind,
//! active from a start to an optional end, as the command line gives it
//! (`KIND@START_S[-END_S]`) and as datasets label it. One mechanism for
//! every asset class: the wind turbine's kinds
//! ([`crate::opcua::turbine::WindFaultKind`]) and the PV inverter's
//! ([`crate::solar::faults::PvFaultKind`]).

/// The kinds of fault of one asset class.
pub trait FaultKind: Copy + Eq + 'static {
    /// Every kind, in a fixed order.
    fn kinds() -> &'static [Self];
    /// The name used on the command line and in dataset labels.
    fn label(self) -> &'static str;
    /// The kind called `name`, if any.
    fn named(name: &str) -> Option<Self> {
        Self::kinds().iter().copied().find(|k| k.label() == name)
    }
}

/// One fault, active from `start_ms` (inclusive) to `end_ms` (exclusive;
/// `None` = never repaired). Unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault<K> {
    pub kind: K,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
}

impl<K: FaultKind> Fault<K> {
    pub fn active(&self, unix_ms: i64) -> bool {
        unix_ms >= self.start_ms && self.end_ms.is_none_or(|e| unix_ms < e)
    }

    /// `kind@START[-END]`, START and END in seconds after `base_ms`
    /// (e.g. `gearbox_overheat@600` or `bearing_creep@60-3600`).
    pub fn parse(spec: &str, base_ms: i64) -> Result<Self, String> {
        let (kind, at) = spec
            .split_once('@')
            .ok_or_else(|| format!("fault {spec:?}: expected KIND@START_S[-END_S]"))?;
        let kind = K::named(kind).ok_or_else(|| {
            let known: Vec<_> = K::kinds().iter().map(|k| k.label()).collect();
            format!(
                "fault {spec:?}: unknown kind {kind:?} (known: {})",
                known.join(", ")
            )
        })?;
        let secs = |s: &str| {
            s.parse::<u32>()
                .map(|v| base_ms + i64::from(v) * 1000)
                .map_err(|_| format!("fault {spec:?}: {s:?} is not a whole number of seconds"))
        };
        let (start_ms, end_ms) = match at.split_once('-') {
            Some((a, b)) => (secs(a)?, Some(secs(b)?)),
            None => (secs(at)?, None),
        };
        if end_ms.is_some_and(|e| e <= start_ms) {
            return Err(format!("fault {spec:?}: the end must be after the start"));
        }
        Ok(Fault {
            kind,
            start_ms,
            end_ms,
        })
    }

    /// The active faults' names at `unix_ms`, sorted, joined by `+`; empty
    /// when none.
    pub fn label(faults: &[Self], unix_ms: i64) -> String {
        let mut names: Vec<&str> = faults
            .iter()
            .filter(|f| f.active(unix_ms))
            .map(|f| f.kind.label())
            .collect();
        names.sort_unstable();
        names.dedup();
        names.join("+")
    }
}
