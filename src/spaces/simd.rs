//! Explicit SIMD distance kernels: wasm `simd128` (every wasm build enables it, see
//! `.cargo/config.toml`) and x86-64 SSE2 (always present on x86-64), with scalar references
//! that other targets use and that the tests compare against.
//!
//! **Same bits as the scalar reference.** The f32 kernels keep the scalar reference's sixteen
//! accumulators as four 4-lane vectors (lane `j` of vector `v` is accumulator `4v + j`),
//! multiply and add separately (no fused multiply-add), and reduce in the reference's order, so
//! a SIMD build scores exactly as the scalar one: rankings and ties never depend on the target.
//! Sixteen accumulators, not eight: with four independent vector chains the adds no longer wait
//! on each other's latency (a 384-dimension row took about twice as long with two chains). The u8 kernels sum exactly in 32-bit integers, wrapping as the reference does, so
//! any order gives the same result.
//!
//! f16 rows are widened to f32 in the kernel with integer operations (shift the magnitude into
//! place, scale by 2^112, force the exponent of infinities and NaNs), which is exact for every
//! half, so f16 sums also equal their reference bit for bit.
//!
//! f32 rows are raw little-endian bytes (unaligned loads); both targets are little-endian.

/// What an f32 kernel sums per element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum F32Op {
    /// `q·v`
    Dot,
    /// `(q−v)²`
    L2,
    /// `|q−v|`
    L1,
}

/// What a u8 kernel sums per element (in `i32`, wrapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum U8Op {
    /// `q·v`
    Dot,
    /// `(q−v)²`
    L2,
    /// `|q−v|`
    L1,
}

/// Σ op(q[i], row[i]) over an f32 query (holding f16-exact values) and a row of little-endian
/// IEEE binary16 bytes (`b.len() == 2 * q.len()`, checked by the caller). Each half is widened
/// exactly to f32, then summed like [`f32_sum`]: the same bits as decoding the row to f32 and
/// calling [`f32_sum_scalar`].
#[inline]
pub fn f16_sum(op: F32Op, q: &[f32], b: &[u8]) -> f32 {
    debug_assert_eq!(b.len(), 2 * q.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        wasm::f16_sum(op, q, b)
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86-64 baseline.
        unsafe { x86::f16_sum(op, q, b) }
    }
    #[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
    {
        f16_sum_scalar(op, q, b)
    }
}

/// The scalar reference of [`f16_sum`]: the `half` crate's conversion, then the f32
/// reference's sixteen accumulators and order.
#[allow(clippy::needless_range_loop)]
pub fn f16_sum_scalar(op: F32Op, q: &[f32], b: &[u8]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let blocks = q.len() / LANES;
    for k in 0..blocks {
        for j in 0..LANES {
            let i = LANES * k + j;
            acc[j] += f32_op(op, q[i], f16_at(b, i));
        }
    }
    reduce_lanes(&acc) + f16_tail(op, q, b, LANES * blocks)
}

/// Elements per block of the f32 and f16 sums: sixteen accumulators.
const LANES: usize = 16;

/// The reference's reduction of the sixteen accumulators: lane `j` of the vector sum
/// `(v0 + v1) + (v2 + v3)` is `(a[j] + a[4+j]) + (a[8+j] + a[12+j])`, then the four lanes as
/// `(l0 + l1) + (l2 + l3)`.
fn reduce_lanes(a: &[f32; LANES]) -> f32 {
    let lane = |j: usize| (a[j] + a[4 + j]) + (a[8 + j] + a[12 + j]);
    (lane(0) + lane(1)) + (lane(2) + lane(3))
}

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[2 * i], b[2 * i + 1]]).to_f32()
}

#[allow(clippy::needless_range_loop)] // the element index also addresses the byte row
fn f16_tail(op: F32Op, q: &[f32], b: &[u8], from: usize) -> f32 {
    let mut tail = 0.0f32;
    for i in from..q.len() {
        tail += f32_op(op, q[i], f16_at(b, i));
    }
    tail
}

/// `2^112`: rescales the exponent of a half's bits shifted into f32 position (bias 15 → 127).
const HALF_TO_SINGLE_SCALE: f32 = f32::from_bits(0x7780_0000);

/// Σ op(q[i], row[i]) over an f32 query and a row of little-endian f32 bytes
/// (`b.len() == 4 * q.len()`, checked by the caller).
#[inline]
pub fn f32_sum(op: F32Op, q: &[f32], b: &[u8]) -> f32 {
    debug_assert_eq!(b.len(), 4 * q.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        wasm::f32_sum(op, q, b)
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86-64 baseline.
        unsafe { x86::f32_sum(op, q, b) }
    }
    #[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
    {
        f32_sum_scalar(op, q, b)
    }
}

/// [`f32_sum`] of one query against two rows at once: the same bits as two separate calls.
/// Each row's sum is one chain of dependent additions; interleaving two rows keeps twice as
/// many additions in flight, which is what bounds a single row's speed.
#[inline]
pub fn f32_sum2(op: F32Op, q: &[f32], a: &[u8], b: &[u8]) -> (f32, f32) {
    debug_assert_eq!(a.len(), 4 * q.len());
    debug_assert_eq!(b.len(), 4 * q.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let [x, y] = wasm::f32_sum_n(op, q, [a, b]);
        (x, y)
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86-64 baseline.
        // SAFETY: SSE2 is part of the x86-64 baseline; both rows are 4·q.len() bytes. No
        // prefetch ahead: the plain scan's pairs, which measured 4 % slower with it.
        let [x, y] = unsafe { x86::f32_sum_n(op, q, [a, b], 0) };
        (x, y)
    }
    #[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
    {
        (f32_sum_scalar(op, q, a), f32_sum_scalar(op, q, b))
    }
}

/// [`f32_sum`] of one query against `N` rows at once: the same bits as `N` separate calls,
/// each row summed on its own accumulators in the same order. The rows a graph step scores
/// lie scattered over the vector storage and arrive from memory a cache line at a time;
/// interleaving `N` of them keeps `N` streams of lines in flight, which the hardware's
/// stream prefetcher follows side by side. On the synthetic HNSW benchmark's ef 128 queries
/// under wasmtime (alternating runs, BENCHMARKS.md): p50 1.35-1.43 ms two rows at a time,
/// 1.28-1.30 four, 1.20-1.30 eight, no better at sixteen. Natively each row's lines are also
/// asked for [`x86::ahead_blocks`] ahead.
#[inline]
pub fn f32_sum_n<const N: usize>(op: F32Op, q: &[f32], rows: [&[u8]; N]) -> [f32; N] {
    debug_assert!(rows.iter().all(|r| r.len() == 4 * q.len()));
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        wasm::f32_sum_n(op, q, rows)
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86-64 baseline; every row is 4·q.len() bytes.
        unsafe { x86::f32_sum_n(op, q, rows, x86::ahead_blocks(N)) }
    }
    #[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
    {
        rows.map(|r| f32_sum_scalar(op, q, r))
    }
}

/// Ask for the first cache line of every row of `rows` ahead of scoring them. The rows a
/// graph step scores lie scattered over the whole vector storage, each a cold run of cache
/// lines; requesting the start of every row of the step before scoring any lets their misses
/// overlap, and the hardware's stream prefetcher brings the rest of each row once its scan
/// starts. x86-64 issues a prefetch hint per row; wasm has no prefetch instruction, so one
/// byte of each row is read, the reads gathered into tight groups ([`first_bytes_in_groups`])
/// and each group's bytes consumed once ([`core::hint::black_box`] tells the compiler that any
/// memory may have changed, so consuming every byte on its own made the loop reload every
/// field it used per row). Other targets do nothing. Measured on
/// 100 000 random 384-dimension rows, 16 per step: 320-340 ns per row without, 245-275 with
/// (native and wasm alike), and hinting every line of the rows was slower (290-320).
#[inline]
pub fn prefetch_all<'a>(rows: impl IntoIterator<Item = &'a [u8]>) {
    #[cfg(target_arch = "x86_64")]
    for b in rows {
        if !b.is_empty() {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: a prefetch hint on an in-bounds address; it never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(b.as_ptr() as *const i8) };
        }
    }
    #[cfg(target_arch = "wasm32")]
    first_bytes_in_groups(rows, |group| {
        let mut seen = 0u8;
        for x in group {
            seen ^= **x;
        }
        core::hint::black_box(seen);
    });
    #[cfg(not(any(target_arch = "x86_64", target_arch = "wasm32")))]
    let _ = rows;
}

/// How many first bytes [`prefetch_all`] gathers before reading them (wasm).
const PREFETCH_GROUP: usize = 32;

/// Hand `read` the first bytes of the non-empty `rows`, in order, [`PREFETCH_GROUP`] at a time
/// (the last group shorter; none for no rows). [`prefetch_all`] in wasm reads each group in a
/// loop of its own: finding a row takes dozens of instructions, and a read that misses holds up
/// every instruction after it until it completes, so reads spaced that far apart would stall
/// one after another instead of overlapping (under wasmtime this halved the walk's own time
/// outside the kernel on the real set's ef 128 queries, BENCHMARKS.md).
#[cfg_attr(not(any(target_arch = "wasm32", test)), allow(dead_code))]
fn first_bytes_in_groups<'a>(rows: impl IntoIterator<Item = &'a [u8]>, mut read: impl FnMut(&[&'a u8])) {
    let mut rows = rows.into_iter();
    loop {
        let mut first: [&u8; PREFETCH_GROUP] = [&0; PREFETCH_GROUP];
        let mut n = 0;
        for b in rows.by_ref() {
            if let Some(x) = b.first() {
                first[n] = x;
                n += 1;
                if n == PREFETCH_GROUP {
                    break;
                }
            }
        }
        if n > 0 {
            read(&first[..n]);
        }
        if n < PREFETCH_GROUP {
            return;
        }
    }
}

/// Σ op(q[i], v[i]) over two u8 vectors of equal length, in `i32` with wrapping.
#[inline]
pub fn u8_sum(op: U8Op, q: &[u8], v: &[u8]) -> i32 {
    debug_assert_eq!(q.len(), v.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        wasm::u8_sum(op, q, v)
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86-64 baseline.
        unsafe { x86::u8_sum(op, q, v) }
    }
    #[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
    {
        u8_sum_scalar(op, q, v)
    }
}

#[inline(always)]
fn f32_op(op: F32Op, a: f32, v: f32) -> f32 {
    match op {
        F32Op::Dot => a * v,
        F32Op::L2 => (a - v) * (a - v),
        F32Op::L1 => (a - v).abs(),
    }
}

#[inline(always)]
fn f32_at(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

/// The scalar reference: sixteen independent accumulators over blocks of sixteen elements,
/// reduced as [`reduce_lanes`] says, then the tail summed left to right and added.
#[allow(clippy::needless_range_loop)] // the element index also addresses the byte row
pub fn f32_sum_scalar(op: F32Op, q: &[f32], b: &[u8]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let blocks = q.len() / LANES;
    for k in 0..blocks {
        for j in 0..LANES {
            let i = LANES * k + j;
            acc[j] += f32_op(op, q[i], f32_at(b, i));
        }
    }
    reduce_lanes(&acc) + f32_tail(op, q, b, LANES * blocks)
}

/// The scalar reference of [`u8_sum`].
pub fn u8_sum_scalar(op: U8Op, q: &[u8], v: &[u8]) -> i32 {
    let mut acc: i32 = 0;
    for (&a, &b) in q.iter().zip(v) {
        let (a, b) = (i32::from(a), i32::from(b));
        acc = acc.wrapping_add(match op {
            U8Op::Dot => a * b,
            U8Op::L2 => (a - b) * (a - b),
            U8Op::L1 => (a - b).abs(),
        });
    }
    acc
}

/// The tail of an f32 sum (elements from `from`), left to right.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // the element index also addresses the byte row
fn f32_tail(op: F32Op, q: &[f32], b: &[u8], from: usize) -> f32 {
    let mut tail = 0.0f32;
    for i in from..q.len() {
        tail += f32_op(op, q[i], f32_at(b, i));
    }
    tail
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use core::arch::wasm32::*;

    use super::{f16_tail, f32_tail, u8_sum_scalar, F32Op, U8Op, HALF_TO_SINGLE_SCALE, LANES};

    /// Four halves (zero-extended in u32 lanes) to f32, exactly: the magnitude bits shifted
    /// into place and scaled by 2^112 (normal and subnormal halves), infinities and NaNs with
    /// the exponent forced to all ones, then the sign.
    #[inline(always)]
    fn widen_halves(x: v128) -> v128 {
        let sign = i32x4_shl(v128_and(x, i32x4_splat(0x8000)), 16);
        let mag = v128_and(x, i32x4_splat(0x7fff));
        let shifted = i32x4_shl(mag, 13);
        let scaled = f32x4_mul(shifted, f32x4_splat(HALF_TO_SINGLE_SCALE));
        let special = v128_or(shifted, i32x4_splat(0x7f80_0000));
        let is_special = i32x4_gt(mag, i32x4_splat(0x7bff));
        v128_or(v128_bitselect(special, scaled, is_special), sign)
    }

    pub fn f16_sum(op: F32Op, q: &[f32], b: &[u8]) -> f32 {
        match op {
            F32Op::Dot => f16_loop(op, q, b, |x, y| step(F32Op::Dot, x, y)),
            F32Op::L2 => f16_loop(op, q, b, |x, y| step(F32Op::L2, x, y)),
            F32Op::L1 => f16_loop(op, q, b, |x, y| step(F32Op::L1, x, y)),
        }
    }

    #[inline(always)]
    fn f16_loop(op: F32Op, q: &[f32], b: &[u8], step: impl Fn(v128, v128) -> v128) -> f32 {
        let blocks = q.len() / LANES;
        let mut acc = [f32x4_splat(0.0); 4];
        let (qp, bp) = (q.as_ptr(), b.as_ptr());
        for k in 0..blocks {
            // SAFETY: element 16k+15 < q.len() and byte 32k+31 < b.len() = 2·q.len();
            // v128_load allows unaligned addresses.
            unsafe {
                let h0 = v128_load(bp.add(32 * k) as *const v128);
                let h1 = v128_load(bp.add(32 * k + 16) as *const v128);
                let rows = [
                    widen_halves(u32x4_extend_low_u16x8(h0)),
                    widen_halves(u32x4_extend_high_u16x8(h0)),
                    widen_halves(u32x4_extend_low_u16x8(h1)),
                    widen_halves(u32x4_extend_high_u16x8(h1)),
                ];
                for (v, row) in rows.into_iter().enumerate() {
                    let qv = v128_load(qp.add(LANES * k + 4 * v) as *const v128);
                    acc[v] = f32x4_add(acc[v], step(qv, row));
                }
            }
        }
        reduce4(acc) + f16_tail(op, q, b, LANES * blocks)
    }

    /// The four accumulator vectors as the scalar reference reduces them.
    #[inline(always)]
    fn reduce4(acc: [v128; 4]) -> f32 {
        reduce(f32x4_add(f32x4_add(acc[0], acc[1]), f32x4_add(acc[2], acc[3])))
    }

    #[inline(always)]
    fn step(op: F32Op, qv: v128, bv: v128) -> v128 {
        match op {
            F32Op::Dot => f32x4_mul(qv, bv),
            F32Op::L2 => {
                let d = f32x4_sub(qv, bv);
                f32x4_mul(d, d)
            }
            F32Op::L1 => f32x4_abs(f32x4_sub(qv, bv)),
        }
    }

    pub fn f32_sum(op: F32Op, q: &[f32], b: &[u8]) -> f32 {
        // one monomorphic loop per operation
        match op {
            F32Op::Dot => f32_loop(op, q, b, |x, y| step(F32Op::Dot, x, y)),
            F32Op::L2 => f32_loop(op, q, b, |x, y| step(F32Op::L2, x, y)),
            F32Op::L1 => f32_loop(op, q, b, |x, y| step(F32Op::L1, x, y)),
        }
    }

    #[inline(always)]
    fn f32_loop(op: F32Op, q: &[f32], b: &[u8], step: impl Fn(v128, v128) -> v128) -> f32 {
        let blocks = q.len() / LANES;
        let mut acc = [f32x4_splat(0.0); 4];
        let (qp, bp) = (q.as_ptr(), b.as_ptr());
        for k in 0..blocks {
            for (v, a) in acc.iter_mut().enumerate() {
                // SAFETY: element 16k+4v+3 < q.len() and byte 64k+16v+15 < b.len() = 4·q.len();
                // v128_load allows unaligned addresses.
                unsafe {
                    let qv = v128_load(qp.add(LANES * k + 4 * v) as *const v128);
                    let bv = v128_load(bp.add(64 * k + 16 * v) as *const v128);
                    *a = f32x4_add(*a, step(qv, bv));
                }
            }
        }
        reduce4(acc) + f32_tail(op, q, b, LANES * blocks)
    }

    #[inline(always)]
    fn reduce(s: v128) -> f32 {
        let (s0, s1, s2, s3) = (
            f32x4_extract_lane::<0>(s),
            f32x4_extract_lane::<1>(s),
            f32x4_extract_lane::<2>(s),
            f32x4_extract_lane::<3>(s),
        );
        (s0 + s1) + (s2 + s3)
    }

    pub fn f32_sum_n<const N: usize>(op: F32Op, q: &[f32], rows: [&[u8]; N]) -> [f32; N] {
        match op {
            F32Op::Dot => f32_loop_n(op, q, rows, |x, y| step(F32Op::Dot, x, y)),
            F32Op::L2 => f32_loop_n(op, q, rows, |x, y| step(F32Op::L2, x, y)),
            F32Op::L1 => f32_loop_n(op, q, rows, |x, y| step(F32Op::L1, x, y)),
        }
    }

    /// [`f32_loop`] over `N` rows, interleaved; each row keeps its own accumulators (also
    /// the pair kernel, [`super::f32_sum2`]).
    #[inline(always)]
    fn f32_loop_n<const N: usize>(
        op: F32Op,
        q: &[f32],
        rows: [&[u8]; N],
        step: impl Fn(v128, v128) -> v128,
    ) -> [f32; N] {
        let blocks = q.len() / LANES;
        let mut acc = [[f32x4_splat(0.0); 4]; N];
        let qp = q.as_ptr();
        let rp = rows.map(|r| r.as_ptr());
        for k in 0..blocks {
            for v in 0..4 {
                // SAFETY: as in f32_loop, for every row (each 4·q.len() bytes).
                unsafe {
                    let qv = v128_load(qp.add(LANES * k + 4 * v) as *const v128);
                    for (a, p) in acc.iter_mut().zip(rp) {
                        let x = v128_load(p.add(64 * k + 16 * v) as *const v128);
                        a[v] = f32x4_add(a[v], step(qv, x));
                    }
                }
            }
        }
        let t = LANES * blocks;
        core::array::from_fn(|j| reduce4(acc[j]) + f32_tail(op, q, rows[j], t))
    }

    pub fn u8_sum(op: U8Op, q: &[u8], v: &[u8]) -> i32 {
        let blocks = q.len() / 16;
        let mut acc = i32x4_splat(0);
        let (qp, vp) = (q.as_ptr(), v.as_ptr());
        for k in 0..blocks {
            // SAFETY: byte 16k+15 < len for both slices; unaligned loads are allowed.
            let (a, b) =
                unsafe { (v128_load(qp.add(16 * k) as *const v128), v128_load(vp.add(16 * k) as *const v128)) };
            let part = match op {
                U8Op::Dot => {
                    // u8·u8 ≤ 65025 fits u16; pairs of u16 widen into u32 lanes
                    let lo = u16x8_extmul_low_u8x16(a, b);
                    let hi = u16x8_extmul_high_u8x16(a, b);
                    i32x4_add(u32x4_extadd_pairwise_u16x8(lo), u32x4_extadd_pairwise_u16x8(hi))
                }
                U8Op::L2 => {
                    let d = v128_or(u8x16_sub_sat(a, b), u8x16_sub_sat(b, a));
                    let lo = u16x8_extmul_low_u8x16(d, d);
                    let hi = u16x8_extmul_high_u8x16(d, d);
                    i32x4_add(u32x4_extadd_pairwise_u16x8(lo), u32x4_extadd_pairwise_u16x8(hi))
                }
                U8Op::L1 => {
                    let d = v128_or(u8x16_sub_sat(a, b), u8x16_sub_sat(b, a));
                    u32x4_extadd_pairwise_u16x8(u16x8_extadd_pairwise_u8x16(d))
                }
            };
            acc = i32x4_add(acc, part);
        }
        let lanes = i32x4_extract_lane::<0>(acc)
            .wrapping_add(i32x4_extract_lane::<1>(acc))
            .wrapping_add(i32x4_extract_lane::<2>(acc))
            .wrapping_add(i32x4_extract_lane::<3>(acc));
        let from = 16 * blocks;
        lanes.wrapping_add(u8_sum_scalar(op, &q[from..], &v[from..]))
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    use super::{f16_tail, f32_tail, u8_sum_scalar, F32Op, U8Op, HALF_TO_SINGLE_SCALE, LANES};

    /// Four halves (zero-extended in u32 lanes) to f32, exactly (see the wasm twin).
    #[inline(always)]
    unsafe fn widen_halves(x: __m128i) -> __m128 {
        let sign = _mm_slli_epi32(_mm_and_si128(x, _mm_set1_epi32(0x8000)), 16);
        let mag = _mm_and_si128(x, _mm_set1_epi32(0x7fff));
        let shifted = _mm_slli_epi32(mag, 13);
        let scaled = _mm_castps_si128(_mm_mul_ps(_mm_castsi128_ps(shifted), _mm_set1_ps(HALF_TO_SINGLE_SCALE)));
        let special = _mm_or_si128(shifted, _mm_set1_epi32(0x7f80_0000));
        let is_special = _mm_cmpgt_epi32(mag, _mm_set1_epi32(0x7bff));
        let r = _mm_or_si128(_mm_and_si128(is_special, special), _mm_andnot_si128(is_special, scaled));
        _mm_castsi128_ps(_mm_or_si128(r, sign))
    }

    /// # Safety
    /// Needs SSE2 (x86-64 baseline); `b.len() == 2 * q.len()`.
    pub unsafe fn f16_sum(op: F32Op, q: &[f32], b: &[u8]) -> f32 {
        match op {
            F32Op::Dot => f16_loop(op, q, b, |x, y| step(F32Op::Dot, x, y)),
            F32Op::L2 => f16_loop(op, q, b, |x, y| step(F32Op::L2, x, y)),
            F32Op::L1 => f16_loop(op, q, b, |x, y| step(F32Op::L1, x, y)),
        }
    }

    #[inline(always)]
    unsafe fn f16_loop(op: F32Op, q: &[f32], b: &[u8], step: impl Fn(__m128, __m128) -> __m128) -> f32 {
        let blocks = q.len() / LANES;
        let zero = _mm_setzero_si128();
        let mut acc = [_mm_setzero_ps(); 4];
        let (qp, bp) = (q.as_ptr(), b.as_ptr());
        for k in 0..blocks {
            let h0 = _mm_loadu_si128(bp.add(32 * k) as *const __m128i);
            let h1 = _mm_loadu_si128(bp.add(32 * k + 16) as *const __m128i);
            let rows = [
                widen_halves(_mm_unpacklo_epi16(h0, zero)),
                widen_halves(_mm_unpackhi_epi16(h0, zero)),
                widen_halves(_mm_unpacklo_epi16(h1, zero)),
                widen_halves(_mm_unpackhi_epi16(h1, zero)),
            ];
            for (v, row) in rows.into_iter().enumerate() {
                let qv = _mm_loadu_ps(qp.add(LANES * k + 4 * v));
                acc[v] = _mm_add_ps(acc[v], step(qv, row));
            }
        }
        reduce4(acc) + f16_tail(op, q, b, LANES * blocks)
    }

    /// The four accumulator vectors as the scalar reference reduces them.
    #[inline(always)]
    unsafe fn reduce4(acc: [__m128; 4]) -> f32 {
        reduce(_mm_add_ps(_mm_add_ps(acc[0], acc[1]), _mm_add_ps(acc[2], acc[3])))
    }

    #[inline(always)]
    unsafe fn step(op: F32Op, qv: __m128, bv: __m128) -> __m128 {
        match op {
            F32Op::Dot => _mm_mul_ps(qv, bv),
            F32Op::L2 => {
                let d = _mm_sub_ps(qv, bv);
                _mm_mul_ps(d, d)
            }
            // clear the sign bit
            F32Op::L1 => _mm_andnot_ps(_mm_set1_ps(-0.0), _mm_sub_ps(qv, bv)),
        }
    }

    /// # Safety
    /// Needs SSE2 (x86-64 baseline); `b.len() == 4 * q.len()`.
    pub unsafe fn f32_sum(op: F32Op, q: &[f32], b: &[u8]) -> f32 {
        // one monomorphic loop per operation
        match op {
            F32Op::Dot => f32_loop(op, q, b, |x, y| step(F32Op::Dot, x, y)),
            F32Op::L2 => f32_loop(op, q, b, |x, y| step(F32Op::L2, x, y)),
            F32Op::L1 => f32_loop(op, q, b, |x, y| step(F32Op::L1, x, y)),
        }
    }

    #[inline(always)]
    unsafe fn f32_loop(op: F32Op, q: &[f32], b: &[u8], step: impl Fn(__m128, __m128) -> __m128) -> f32 {
        let blocks = q.len() / LANES;
        let mut acc = [_mm_setzero_ps(); 4];
        let (qp, bp) = (q.as_ptr(), b.as_ptr());
        for k in 0..blocks {
            for (v, a) in acc.iter_mut().enumerate() {
                let qv = _mm_loadu_ps(qp.add(LANES * k + 4 * v));
                let bv = _mm_loadu_ps(bp.add(64 * k + 16 * v) as *const f32);
                *a = _mm_add_ps(*a, step(qv, bv));
            }
        }
        reduce4(acc) + f32_tail(op, q, b, LANES * blocks)
    }

    #[inline(always)]
    unsafe fn reduce(s: __m128) -> f32 {
        let mut l = [0.0f32; 4];
        _mm_storeu_ps(l.as_mut_ptr(), s);
        (l[0] + l[1]) + (l[2] + l[3])
    }

    /// # Safety
    /// Needs SSE2 (x86-64 baseline); every row is `4 * q.len()` bytes.
    /// Each row's line `ahead` blocks on is asked for (0: none; a constant where inlined).
    #[inline(always)]
    pub unsafe fn f32_sum_n<const N: usize>(op: F32Op, q: &[f32], rows: [&[u8]; N], ahead: usize) -> [f32; N] {
        match op {
            F32Op::Dot => f32_loop_n(op, q, rows, ahead, |x, y| step(F32Op::Dot, x, y)),
            F32Op::L2 => f32_loop_n(op, q, rows, ahead, |x, y| step(F32Op::L2, x, y)),
            F32Op::L1 => f32_loop_n(op, q, rows, ahead, |x, y| step(F32Op::L1, x, y)),
        }
    }

    /// How many 64-byte blocks ahead of the one it scores [`f32_loop_n`] asks for each row's
    /// line (a prefetch hint; the blocks are cache lines of a matrix held from a line
    /// boundary). The stream prefetcher alone left the pair kernel stalled at the start of
    /// nearly every line: 80 % of its profile on the two multiplies waiting for a new line.
    /// On the synthetic HNSW benchmark's ef 128 queries (alternating runs): two rows 1.23-1.30
    /// ms p50 without, 1.06-1.07 at 4 blocks, 0.99-1.04 at 8, 1.09-1.14 at 12; eight rows
    /// 1.05-1.12 without, 0.96-0.99 at 2, 0.90-0.96 at 3, 0.89-0.90 at 4, 0.95 at 6. wasm has
    /// no prefetch, and a byte read of a line ahead stalls where a hint does not: reading
    /// one in the loop, or a few lines in a loop before it, measured slower there.
    pub const fn ahead_blocks(rows: usize) -> usize {
        if rows >= 8 {
            4
        } else {
            8
        }
    }

    /// [`f32_loop`] over `N` rows, interleaved; each row keeps its own accumulators. The
    /// pair kernel ([`super::f32_sum2`]) is `N = 2` without prefetch.
    #[inline(always)]
    unsafe fn f32_loop_n<const N: usize>(
        op: F32Op,
        q: &[f32],
        rows: [&[u8]; N],
        ahead: usize,
        step: impl Fn(__m128, __m128) -> __m128,
    ) -> [f32; N] {
        let blocks = q.len() / LANES;
        let mut acc = [[_mm_setzero_ps(); 4]; N];
        let qp = q.as_ptr();
        let rp = rows.map(|r| r.as_ptr());
        for k in 0..blocks {
            if ahead > 0 && k + ahead < blocks {
                for p in rp {
                    // In bounds: block k + ahead starts inside every row.
                    _mm_prefetch::<_MM_HINT_T0>(p.add(64 * (k + ahead)) as *const i8);
                }
            }
            for v in 0..4 {
                let qv = _mm_loadu_ps(qp.add(LANES * k + 4 * v));
                for (a, p) in acc.iter_mut().zip(rp) {
                    let x = _mm_loadu_ps(p.add(64 * k + 16 * v) as *const f32);
                    a[v] = _mm_add_ps(a[v], step(qv, x));
                }
            }
        }
        let t = LANES * blocks;
        core::array::from_fn(|j| reduce4(acc[j]) + f32_tail(op, q, rows[j], t))
    }

    /// # Safety
    /// Needs SSE2 (x86-64 baseline); `q.len() == v.len()`.
    pub unsafe fn u8_sum(op: U8Op, q: &[u8], v: &[u8]) -> i32 {
        let blocks = q.len() / 16;
        let zero = _mm_setzero_si128();
        let mut acc = _mm_setzero_si128();
        let (qp, vp) = (q.as_ptr(), v.as_ptr());
        for k in 0..blocks {
            let a = _mm_loadu_si128(qp.add(16 * k) as *const __m128i);
            let b = _mm_loadu_si128(vp.add(16 * k) as *const __m128i);
            let part = match op {
                U8Op::Dot => {
                    // widen to i16 (0..=255), multiply pairs and add them into i32 lanes
                    let (al, ah) = (_mm_unpacklo_epi8(a, zero), _mm_unpackhi_epi8(a, zero));
                    let (bl, bh) = (_mm_unpacklo_epi8(b, zero), _mm_unpackhi_epi8(b, zero));
                    _mm_add_epi32(_mm_madd_epi16(al, bl), _mm_madd_epi16(ah, bh))
                }
                U8Op::L2 => {
                    let d = _mm_or_si128(_mm_subs_epu8(a, b), _mm_subs_epu8(b, a));
                    let (dl, dh) = (_mm_unpacklo_epi8(d, zero), _mm_unpackhi_epi8(d, zero));
                    _mm_add_epi32(_mm_madd_epi16(dl, dl), _mm_madd_epi16(dh, dh))
                }
                // sums of absolute differences: two u64 lanes (each < 2^12)
                U8Op::L1 => _mm_sad_epu8(a, b),
            };
            acc = _mm_add_epi32(acc, part);
        }
        let mut lanes = [0i32; 4];
        _mm_storeu_si128(lanes.as_mut_ptr() as *mut __m128i, acc);
        let from = 16 * blocks;
        lanes[0].wrapping_add(lanes[1]).wrapping_add(lanes[2]).wrapping_add(lanes[3]).wrapping_add(u8_sum_scalar(
            op,
            &q[from..],
            &v[from..],
        ))
    }
}

/// Compare every kernel with its scalar reference on generated inputs (lengths 0–79 and
/// typical dimensions, mixed signs, zeros, subnormals, NaN, unaligned rows, every f16 bit
/// pattern, u8 extremes that wrap `i32`): f32 and f16 bit for bit, u8 exactly. Returns how many comparisons passed. Run by the
/// native unit tests, under WASI (`tests/storage_conformance.rs`) and under Node
/// (`tests/web_node.rs`), so each target's SIMD code is checked where it runs.
pub fn check_against_scalar() -> Result<usize, String> {
    let mut checks = 0;
    let mut ensure = |ok: bool, what: String| -> Result<(), String> {
        if ok {
            checks += 1;
            Ok(())
        } else {
            Err(what)
        }
    };
    for n in (0..80).chain([383, 384, 385, 1536]) {
        for seed in 0..4 {
            let q = gen_f32(n, seed);
            let b: Vec<u8> = gen_f32(n, seed + 100).iter().flat_map(|x| x.to_le_bytes()).collect();
            let b2: Vec<u8> = gen_f32(n, seed + 200).iter().flat_map(|x| x.to_le_bytes()).collect();
            for op in [F32Op::Dot, F32Op::L2, F32Op::L1] {
                let (fast, slow) = (f32_sum(op, &q, &b), f32_sum_scalar(op, &q, &b));
                ensure(fast.to_bits() == slow.to_bits(), format!("f32 {op:?} n={n} seed={seed}: {fast} vs {slow}"))?;
                let (pa, pb) = f32_sum2(op, &q, &b, &b2);
                let sb = f32_sum_scalar(op, &q, &b2);
                ensure(
                    pa.to_bits() == slow.to_bits() && pb.to_bits() == sb.to_bits(),
                    format!("f32 pair {op:?} n={n} seed={seed}: ({pa}, {pb}) vs ({slow}, {sb})"),
                )?;
                // groups of rows (the walk scores 8, 4 and 2 at a time), each row different
                let group: Vec<Vec<u8>> = (0..8u64)
                    .map(|j| gen_f32(n, seed + 400 + 10 * j).iter().flat_map(|x| x.to_le_bytes()).collect())
                    .collect();
                let want: Vec<u32> = group.iter().map(|r| f32_sum_scalar(op, &q, r).to_bits()).collect();
                let r8: [&[u8]; 8] = core::array::from_fn(|j| &group[j][..]);
                let r4: [&[u8]; 4] = core::array::from_fn(|j| &group[j + 4][..]);
                let r2: [&[u8]; 2] = [&group[3][..], &group[6][..]];
                let got8 = f32_sum_n(op, &q, r8).map(f32::to_bits);
                let got4 = f32_sum_n(op, &q, r4).map(f32::to_bits);
                let got2 = f32_sum_n(op, &q, r2).map(f32::to_bits);
                ensure(
                    got8[..] == want[..] && got4[..] == want[4..] && got2 == [want[3], want[6]],
                    format!("f32 groups {op:?} n={n} seed={seed}: {got8:?} {got4:?} {got2:?} vs {want:?}"),
                )?;
            }
        }
    }
    // a row at an odd byte offset
    let q = gen_f32(37, 9);
    let mut raw = vec![0u8; 3];
    raw.extend(gen_f32(37, 10).iter().flat_map(|x| x.to_le_bytes()));
    let (fast, slow) = (f32_sum(F32Op::Dot, &q, &raw[3..]), f32_sum_scalar(F32Op::Dot, &q, &raw[3..]));
    ensure(fast.to_bits() == slow.to_bits(), format!("f32 unaligned: {fast} vs {slow}"))?;
    // NaN propagates
    let mut q = gen_f32(24, 3);
    q[5] = f32::NAN;
    let b: Vec<u8> = gen_f32(24, 4).iter().flat_map(|x| x.to_le_bytes()).collect();
    ensure(f32_sum(F32Op::L1, &q, &b).is_nan(), "f32 NaN".into())?;
    // f16 rows: every half bit pattern once (normals, subnormals, zeros, infinities, NaNs)
    // against a query of f16-exact values, and generated rows of typical lengths.
    let all: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
    let widened: Vec<f32> = (0..=u16::MAX).map(|h| half::f16::from_bits(h).to_f32()).collect();
    for (i, chunk) in all.chunks(2 * 1024).enumerate() {
        let n = chunk.len() / 2;
        let q: Vec<f32> = gen_f32(n, i as u64).iter().map(|&x| half::f16::from_f32(x).to_f32()).collect();
        for op in [F32Op::Dot, F32Op::L2, F32Op::L1] {
            let (fast, slow) = (f16_sum(op, &q, chunk), f16_sum_scalar(op, &q, chunk));
            let same = fast.to_bits() == slow.to_bits() || (fast.is_nan() && slow.is_nan());
            ensure(same, format!("f16 {op:?} bit patterns chunk {i}: {fast} vs {slow}"))?;
        }
        // the widening itself: a query of ones against one pattern at a time
        if i == 0 {
            for h in 0..=u16::MAX {
                let mut row = [0u8; 2 * LANES];
                row[..2].copy_from_slice(&h.to_le_bytes());
                let one = f16_sum(F32Op::Dot, &[1.0; LANES], &row);
                let want = widened[h as usize];
                let same =
                    one.to_bits() == want.to_bits() || (one.is_nan() && want.is_nan()) || (want == 0.0 && one == 0.0);
                ensure(same, format!("f16 widening of {h:#06x}: {one} vs {want}"))?;
            }
        }
    }
    for n in (0..80).chain([383, 384, 385, 1536]) {
        for seed in 0..3 {
            let q: Vec<f32> = gen_f32(n, seed).iter().map(|&x| half::f16::from_f32(x).to_f32()).collect();
            let b: Vec<u8> =
                gen_f32(n, seed + 300).iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect();
            for op in [F32Op::Dot, F32Op::L2, F32Op::L1] {
                let (fast, slow) = (f16_sum(op, &q, &b), f16_sum_scalar(op, &q, &b));
                ensure(fast.to_bits() == slow.to_bits(), format!("f16 {op:?} n={n} seed={seed}: {fast} vs {slow}"))?;
            }
        }
    }
    for n in (0..70).chain([255, 256, 384, 4096, 70_000]) {
        for seed in 0..3 {
            let (q, v) = (gen_u8(n, seed), gen_u8(n, seed + 50));
            for op in [U8Op::Dot, U8Op::L2, U8Op::L1] {
                let (fast, slow) = (u8_sum(op, &q, &v), u8_sum_scalar(op, &q, &v));
                ensure(fast == slow, format!("u8 {op:?} n={n} seed={seed}: {fast} vs {slow}"))?;
            }
        }
    }
    // the largest per-element terms, wrapping past i32
    let n = 40_000;
    let (a, z) = (vec![255u8; n], vec![0u8; n]);
    for op in [U8Op::Dot, U8Op::L2, U8Op::L1] {
        ensure(u8_sum(op, &a, &a) == u8_sum_scalar(op, &a, &a), format!("u8 {op:?} 255·255"))?;
        ensure(u8_sum(op, &a, &z) == u8_sum_scalar(op, &a, &z), format!("u8 {op:?} 255·0"))?;
    }
    ensure(u8_sum_scalar(U8Op::Dot, &a, &a) == (65025i64 * n as i64) as i32, "u8 reference wraps as i32".into())?;
    Ok(checks)
}

/// Deterministic values with mixed signs, magnitudes, zeros and subnormals.
fn gen_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match i % 11 {
                0 => 0.0,
                1 => f32::from_bits((x as u32) & 0x007f_ffff),
                _ => {
                    ((x >> 11) as f64 / (1u64 << 53) as f64 * 200.0 - 100.0) as f32
                        * if i % 3 == 0 { 1e-3 } else { 1.0 }
                }
            }
        })
        .collect()
}

fn gen_u8(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match i % 7 {
                0 => 0,
                1 => 255,
                _ => (x >> 24) as u8,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernels_equal_their_scalar_references() {
        let n = super::check_against_scalar().unwrap();
        assert!(n > 1500, "{n} checks");
    }

    /// wasm reads the rows' first bytes in groups: every count around the group size, with
    /// empty rows among them, gives exactly the non-empty rows' first bytes, in order, in full
    /// groups but the last.
    #[test]
    fn row_requests_take_every_first_byte_in_groups() {
        let data: Vec<u8> = (0..=255).collect();
        for n in [0usize, 1, 31, 32, 33, 63, 64, 65, 200] {
            let rows: Vec<&[u8]> = (0..n).map(|i| if i % 7 == 3 { &data[..0] } else { &data[i % 256..] }).collect();
            let want: Vec<*const u8> = rows.iter().filter_map(|r| r.first()).map(|x| x as *const u8).collect();
            let mut got: Vec<*const u8> = Vec::new();
            let mut sizes = Vec::new();
            super::first_bytes_in_groups(rows.iter().copied(), |g| {
                sizes.push(g.len());
                got.extend(g.iter().map(|&x| x as *const u8));
            });
            assert_eq!(got, want, "{n} rows");
            let full = want.len() / super::PREFETCH_GROUP;
            assert!(sizes[..full].iter().all(|&s| s == super::PREFETCH_GROUP), "{n}: {sizes:?}");
            assert_eq!(sizes.len(), want.len().div_ceil(super::PREFETCH_GROUP), "{n}: {sizes:?}");
            super::prefetch_all(rows.into_iter().rev());
        }
    }
}
