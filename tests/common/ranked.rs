//! Comparing two ranked answers, `(id, score)` best first, "up to ties".
//!
//! Oracle tests compare our answer with qdrant-edge-py's. Two engines that agree may still order
//! points of equal score differently, and a limit that cuts a run of equal scores may keep
//! different members of it. [`agreement`] says how far two answers agree under explicit
//! [`Ties`] rules; the runs are those of the first answer (the oracle's).

/// How neighbouring scores group into runs whose ids may come in any order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Run {
    /// Exactly equal scores.
    Equal,
    /// Scores within the comparison tolerance of the run's first score.
    Close,
    /// The whole answer is one run: only the set of ids must agree.
    Whole,
}

/// The rules of a comparison.
#[derive(Debug, Clone, Copy)]
pub struct Ties {
    /// Relative tolerance (floor 1.0 on the magnitude) for the scores at each position.
    pub tolerance: f64,
    pub run: Run,
    /// The last run, which the limit may cut, may hold other ids (the same number of them).
    pub cut_last_run: bool,
}

impl Ties {
    /// Exactly equal scores form runs; every run, the last included, holds the same ids.
    pub const fn strict(tolerance: f64) -> Ties {
        Ties { tolerance, run: Run::Equal, cut_last_run: false }
    }

    pub const fn cut_last_run(self) -> Ties {
        Ties { cut_last_run: true, ..self }
    }

    pub const fn runs(self, run: Run) -> Ties {
        Ties { run, ..self }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agreement {
    /// The same ids in the same order, scores within the tolerance.
    Exactly,
    /// The same ids in every run, in another order.
    UpToTieOrder,
    /// As `UpToTieOrder`, except that the last run holds other ids (allowed by `cut_last_run`).
    UpToBoundaryChoice,
    No,
}

impl Agreement {
    pub fn is_same(self) -> bool {
        self != Agreement::No
    }
}

pub fn close(x: f64, y: f64, tolerance: f64) -> bool {
    (x - y).abs() <= tolerance * x.abs().max(1.0)
}

/// How far `b` agrees with `a` (whose runs count) under `ties`. Answers of different lengths,
/// or with a score out of tolerance at any position, do not agree.
pub fn agreement<K: Ord + Clone>(a: &[(K, f64)], b: &[(K, f64)], ties: Ties) -> Agreement {
    if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| !close(x.1, y.1, ties.tolerance)) {
        return Agreement::No;
    }
    if a.iter().zip(b).all(|(x, y)| x.0 == y.0) {
        return Agreement::Exactly;
    }
    let mut result = Agreement::UpToTieOrder;
    let mut start = 0;
    while start < a.len() {
        let mut end = start + 1;
        while end < a.len()
            && match ties.run {
                Run::Equal => a[end].1 == a[start].1,
                Run::Close => close(a[end].1, a[start].1, ties.tolerance),
                Run::Whole => true,
            }
        {
            end += 1;
        }
        let mut x: Vec<K> = a[start..end].iter().map(|p| p.0.clone()).collect();
        let mut y: Vec<K> = b[start..end].iter().map(|p| p.0.clone()).collect();
        x.sort_unstable();
        y.sort_unstable();
        if x != y {
            // Other members of a cut last run must tie with it as the run rule says (engines
            // score in f32; one may print it shortest, the other widened to f64).
            let ties_with_run = |s: f64| match ties.run {
                Run::Equal => s as f32 == a[start].1 as f32,
                Run::Close => close(s, a[start].1, ties.tolerance),
                Run::Whole => true,
            };
            if !(ties.cut_last_run && end == a.len() && b[start..end].iter().all(|p| ties_with_run(p.1))) {
                return Agreement::No;
            }
            result = Agreement::UpToBoundaryChoice;
        }
        start = end;
    }
    result
}

/// Checks of the rules themselves, run by one test binary (`binary_quant_oracle`).
pub fn self_test() {
    const STRICT: Ties = Ties::strict(1e-5);
    {
        let a = [(1u64, 0.9), (2, 0.5), (3, 0.5), (4, 0.1)];
        assert_eq!(agreement(&a, &a, STRICT), Agreement::Exactly);
        // a tie swapped
        let b = [(1u64, 0.9), (3, 0.5), (2, 0.5), (4, 0.1)];
        assert_eq!(agreement(&a, &b, STRICT), Agreement::UpToTieOrder);
        // a swap across different scores
        let c = [(2u64, 0.9), (1, 0.5), (3, 0.5), (4, 0.1)];
        assert_eq!(agreement(&a, &c, STRICT), Agreement::No);
        // a score out of tolerance
        let d = [(1u64, 0.9), (2, 0.5), (3, 0.5), (4, 0.1001)];
        assert_eq!(agreement(&a, &d, STRICT), Agreement::No);
        // another member of a cut last run
        let e = [(1u64, 0.9), (2, 0.5), (5, 0.5)];
        let f = [(1u64, 0.9), (2, 0.5), (6, 0.5)];
        assert_eq!(agreement(&e, &f, STRICT), Agreement::No);
        assert_eq!(agreement(&e, &f, STRICT.cut_last_run()), Agreement::UpToBoundaryChoice);
        // the same f32 score, printed widened by one engine and shortest by the other
        let e1 = [(1u64, 10.0), (5, f64::from(9.733334f32))];
        let f1 = [(1u64, 10.0), (6, 9.733334)];
        assert_eq!(agreement(&e1, &f1, STRICT.cut_last_run()), Agreement::UpToBoundaryChoice);
        // ... but only with a score tying with the run
        let f2 = [(1u64, 0.9), (2, 0.5), (6, 0.500001)];
        assert_eq!(agreement(&e, &f2, STRICT.cut_last_run()), Agreement::No);
        // near ties group only under Run::Close
        let g = [(1u64, 0.5), (2, 0.500001)];
        let h = [(2u64, 0.500001), (1, 0.5)];
        assert_eq!(agreement(&g, &h, STRICT), Agreement::No);
        assert_eq!(agreement(&g, &h, STRICT.runs(Run::Close)), Agreement::UpToTieOrder);
        // the whole answer as one set
        let i = [(1u64, 0.9), (2, 0.9), (3, 0.1)];
        let j = [(2u64, 0.9), (1, 0.9), (3, 0.1)];
        assert_eq!(agreement(&i, &j, STRICT.runs(Run::Whole)), Agreement::UpToTieOrder);
        assert_eq!(agreement(&i, &i[..2], STRICT), Agreement::No);
    }
}

/// A quantization oracle's comparison of Qdrant's answer `a` with ours `b`: the same score at
/// every position, every run of exactly equal scores (nearly equal, within 1e-5, for
/// `near_ties`) holding the same ids, the last run included unless `boundary_relaxed`.
pub fn quantized_agreement(a: &[(u64, f64)], b: &[(u64, f64)], boundary_relaxed: bool, near_ties: bool) -> Agreement {
    let mut ties = Ties::strict(1e-5).runs(if near_ties { Run::Close } else { Run::Equal });
    if boundary_relaxed {
        ties = ties.cut_last_run();
    }
    agreement(a, b, ties)
}
