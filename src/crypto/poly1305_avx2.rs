//! Poly1305 four blocks at a time with AVX2: the bulk of a long message,
//! for [`poly1305_64`](super::poly1305_64), which keeps the accumulator
//! between calls and does the short parts and the final reduction.
//!
//! The method of Goll and Gueron (and of OpenSSL's and libsodium's AVX2
//! code): the accumulator is split into four lanes, lane `i` taking blocks
//! `i`, `i + 4`, `i + 8`, ...; each lane is multiplied by `r^4` per step of
//! 64 bytes, and at the end by `r^4`, `r^3`, `r^2` or `r`, so that the sum
//! of the lanes is what the one-block-at-a-time Horner rule gives. Numbers
//! are held as five 26-bit limbs, one per 64-bit lane of a vector, so that
//! `vpmuludq` (32 x 32 -> 64 bits) multiplies them and the sums of
//! products fit in 64 bits (bounds below, at each step).
//!
//! Why hand-written: the crate's radix-2^64 code ran at 227 us per MiB
//! against libsodium's 214 us (its SSE2 code), and RustCrypto's `poly1305`
//! (AVX2) at 259 us, in the same run (`poly1305` group of
//! `benches/enclave.rs`); at 1 MiB the seal then lagged libsodium's on CPUs
//! without AVX-512 (issue 13). No maintained crate has a faster one.
//!
//! Tested against the radix-2^64 code and RustCrypto's `poly1305` at every
//! length to 2048 bytes, around the 64-byte boundaries, at random lengths to
//! 1 MiB, on extreme keys and messages, fed in pieces, and by the `poly1305`
//! fuzz target; nothing branches on or indexes by secret data.

use core::arch::x86_64::*;

use zeroize::Zeroize;

/// Bytes per step: four 16-byte blocks.
pub(crate) const STEP: usize = 64;

/// Five limbs of 26 bits: `l[0] + l[1] * 2^26 + ... + l[4] * 2^104`.
type Limbs = [u64; 5];

/// The low 26 bits.
const MASK: u64 = (1 << 26) - 1;

/// The powers of `r` the vector loop multiplies by, as 26-bit limbs, each
/// below `2^26 + 2^10` (so five times one is below `2^28.4`). Exists only
/// where the CPU has AVX2 ([`Powers::new`] checks), which is what makes
/// [`absorb`](Powers::absorb) safe to call. Wiped on drop.
pub(crate) struct Powers {
    /// `r^4`, the factor of every step.
    r4: Limbs,
    /// Per limb, the factor of each lane at the end: `r^4`, `r^2`, `r^3`,
    /// `r` (lanes hold blocks 0, 2, 1 and 3 of each step: see
    /// [`load_step`]).
    last: [[u64; 4]; 5],
}

impl Drop for Powers {
    fn drop(&mut self) {
        self.r4.zeroize();
        self.last.zeroize();
    }
}

impl Powers {
    /// The powers of the clamped `r` (its two little-endian words), or
    /// `None` where the CPU has no AVX2.
    pub(crate) fn new(r0: u64, r1: u64) -> Option<Powers> {
        if !std::is_x86_feature_detected!("avx2") {
            return None;
        }
        let mut r = to_limbs(r0, r1, 0);
        let mut r2 = mul(&r, &r);
        let mut r3 = mul(&r2, &r);
        let r4 = mul(&r3, &r);
        let last = std::array::from_fn(|j| [r4[j], r2[j], r3[j], r[j]]);
        r.zeroize();
        r2.zeroize();
        r3.zeroize();
        Some(Powers { r4, last })
    }

    /// Absorbs `data` into the accumulator `h` (`h[0] + h[1] * 2^64 + h[2]
    /// * 2^128`, `h[2]` at most 4, as the radix-2^64 code keeps it), each
    /// 16-byte block with its 2^128 bit set. `data`'s length must be a
    /// multiple of [`STEP`]; anything past the last whole step is left
    /// alone. Leaves `h[2]` at most 4.
    pub(crate) fn absorb(&self, h: &mut [u64; 3], data: &[u8]) {
        // SAFETY: a `Powers` exists only where the CPU has AVX2 (`new`).
        unsafe { absorb_avx2(self, h, data) }
    }
}

/// `h0 + h1 * 2^64 + h2 * 2^128` as limbs: each below 2^26 but the top one,
/// which is below `2^24 * (1 + h2)`.
fn to_limbs(h0: u64, h1: u64, h2: u64) -> Limbs {
    [
        h0 & MASK,
        (h0 >> 26) & MASK,
        ((h0 >> 52) | (h1 << 12)) & MASK,
        (h1 >> 14) & MASK,
        (h1 >> 40) | (h2 << 24),
    ]
}

/// Carries each limb into the next, the top one times 5 into the bottom
/// (2^130 = 5 mod p), then the bottom once more. From limbs below 2^58:
/// all below 2^26 but `l[1]`, below `2^26 + 2^9`.
fn carry(l: &mut Limbs) {
    for i in 0..4 {
        l[i + 1] += l[i] >> 26;
        l[i] &= MASK;
    }
    let c = l[4] >> 26;
    l[4] &= MASK;
    l[0] += c * 5;
    l[1] += l[0] >> 26;
    l[0] &= MASK;
}

/// `a * b mod p`, partly reduced (see [`carry`]), for limbs below
/// `2^26 + 2^10`: each product is below 2^52.1, five times one below 2^54.5,
/// a sum of five below 2^57.
fn mul(a: &Limbs, b: &Limbs) -> Limbs {
    let s = |i: usize| b[i] * 5;
    let mut d = [
        a[0] * b[0] + a[1] * s(4) + a[2] * s(3) + a[3] * s(2) + a[4] * s(1),
        a[0] * b[1] + a[1] * b[0] + a[2] * s(4) + a[3] * s(3) + a[4] * s(2),
        a[0] * b[2] + a[1] * b[1] + a[2] * b[0] + a[3] * s(4) + a[4] * s(3),
        a[0] * b[3] + a[1] * b[2] + a[2] * b[1] + a[3] * b[0] + a[4] * s(4),
        a[0] * b[4] + a[1] * b[3] + a[2] * b[2] + a[3] * b[1] + a[4] * b[0],
    ];
    carry(&mut d);
    d
}

/// Four numbers, one per 64-bit lane, as five limb vectors.
type Lanes = [__m256i; 5];

/// The four blocks of one step as limbs, with their 2^128 bits: lanes 0 to
/// 3 hold blocks 0, 2, 1, 3 (`vpunpcklqdq` pairs within 128-bit halves).
/// Limbs below 2^26, the top one below 2^25. `mask` is from
/// [`opaque_mask`].
#[inline]
#[target_feature(enable = "avx2")]
fn load_step(step: &[u8; STEP], mask: __m256i) -> Lanes {
    let (a, b) = step.split_at(32);
    // SAFETY: `a` is 32 bytes (the first half of a 64-byte array); loadu
    // has no alignment requirement.
    let a = unsafe { _mm256_loadu_si256(a.as_ptr().cast()) };
    // SAFETY: as for `a`: the second half.
    let b = unsafe { _mm256_loadu_si256(b.as_ptr().cast()) };
    let lo = _mm256_unpacklo_epi64(a, b);
    let hi = _mm256_unpackhi_epi64(a, b);
    [
        _mm256_and_si256(lo, mask),
        _mm256_and_si256(_mm256_srli_epi64::<26>(lo), mask),
        _mm256_and_si256(
            _mm256_or_si256(_mm256_srli_epi64::<52>(lo), _mm256_slli_epi64::<12>(hi)),
            mask,
        ),
        _mm256_and_si256(_mm256_srli_epi64::<14>(hi), mask),
        _mm256_or_si256(_mm256_srli_epi64::<40>(hi), _mm256_set1_epi64x(1 << 24)),
    ]
}

/// `h * r` lane by lane, partly reduced, with `s[i] = 5 * r[i]` and `mask`
/// from [`opaque_mask`]. For limbs
/// of `h` below 2^27.1 and of `r` below `2^26 + 2^10` (`s` below 2^28.4):
/// each product is below 2^55.5, each sum of five below 2^58; after the
/// carries every limb is below 2^26 but the second (below `2^26 + 2^9`) and
/// the fifth (below `2^26 + 2^7`).
#[inline]
#[target_feature(enable = "avx2")]
fn mul_lanes(h: &Lanes, r: &Lanes, s: &Lanes, mask: __m256i) -> Lanes {
    let m = |a, b| _mm256_mul_epu32(a, b);
    let add = |a, b| _mm256_add_epi64(a, b);
    let mut d = [
        add(
            add(m(h[0], r[0]), m(h[1], s[4])),
            add(add(m(h[2], s[3]), m(h[3], s[2])), m(h[4], s[1])),
        ),
        add(
            add(m(h[0], r[1]), m(h[1], r[0])),
            add(add(m(h[2], s[4]), m(h[3], s[3])), m(h[4], s[2])),
        ),
        add(
            add(m(h[0], r[2]), m(h[1], r[1])),
            add(add(m(h[2], r[0]), m(h[3], s[4])), m(h[4], s[3])),
        ),
        add(
            add(m(h[0], r[3]), m(h[1], r[2])),
            add(add(m(h[2], r[1]), m(h[3], r[0])), m(h[4], s[4])),
        ),
        add(
            add(m(h[0], r[4]), m(h[1], r[3])),
            add(add(m(h[2], r[2]), m(h[3], r[1])), m(h[4], r[0])),
        ),
    ];
    // Two carry chains interleaved (0 -> 1 -> 2 -> 3 -> 4 and 3 -> 4 ->
    // 0 -> 1). From sums below 2^58 each carry is below 2^32.1, five times
    // the top one (a shift and an add: it may not fit `vpmuludq`'s 32
    // bits) below 2^34.4.
    macro_rules! carry {
        ($from:literal => $to:literal) => {
            let c = _mm256_srli_epi64::<26>(d[$from]);
            d[$from] = _mm256_and_si256(d[$from], mask);
            d[$to] = add(d[$to], c);
        };
    }
    carry!(0 => 1);
    carry!(3 => 4);
    carry!(1 => 2);
    let c = _mm256_srli_epi64::<26>(d[4]);
    d[4] = _mm256_and_si256(d[4], mask);
    d[0] = add(d[0], add(c, _mm256_slli_epi64::<2>(c)));
    carry!(2 => 3);
    carry!(0 => 1);
    carry!(3 => 4);
    d
}

/// 2^26 - 1 in each lane, hidden from the optimiser.
///
/// Were it a constant, the compiler would see that the accumulator's limbs
/// fit 32 bits, drop the 32-bit masks of `vpmuludq`'s operands, then (its
/// instruction selection not seeing through the loop) multiply them as
/// full 64-bit numbers: 50 multiplies a step instead of 25, and the code
/// barely faster than the radix-2^64 one (224 against 240 us per MiB, in
/// one run of the `poly1305` bench group).
#[inline]
#[target_feature(enable = "avx2")]
fn opaque_mask() -> __m256i {
    _mm256_set1_epi64x(core::hint::black_box(MASK as i64))
}

/// `[x, x, x, x]` for each limb.
#[inline]
#[target_feature(enable = "avx2")]
fn broadcast(l: &Limbs) -> Lanes {
    l.map(|x| _mm256_set1_epi64x(x as i64))
}

/// `5 * r` for each limb.
#[inline]
#[target_feature(enable = "avx2")]
fn times5(r: &Lanes) -> Lanes {
    r.map(|x| _mm256_add_epi64(x, _mm256_slli_epi64::<2>(x)))
}

/// [`Powers::absorb`], then every vector register cleared (no accumulator
/// or power of `r` left in one).
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
unsafe fn absorb_avx2(powers: &Powers, h: &mut [u64; 3], data: &[u8]) {
    absorb_lanes(powers, h, data);
    _mm256_zeroall();
}

/// The body of [`absorb_avx2`].
#[inline]
#[target_feature(enable = "avx2")]
fn absorb_lanes(powers: &Powers, h: &mut [u64; 3], data: &[u8]) {
    let mask = opaque_mask();
    let mut steps = data.chunks_exact(STEP).map(|s| {
        let s: &[u8; STEP] = s.try_into().expect("chunks_exact gives whole steps");
        load_step(s, mask)
    });
    let Some(mut acc) = steps.next() else {
        return;
    };
    // The accumulator joins block 0 (lane 0). Its limbs are below 2^26 but
    // the top one, below 5 * 2^24; with the block's, below 2^27.1.
    let mut start = to_limbs(h[0], h[1], h[2]);
    for (a, x) in acc.iter_mut().zip(start) {
        *a = _mm256_add_epi64(*a, _mm256_set_epi64x(0, 0, 0, x as i64));
    }
    start.zeroize();

    // Through `black_box` for the reason of `opaque_mask`: seeing that
    // only the low half of `r^4`'s first limb is used, the compiler would
    // load it as a 32-bit number, and multiply it as a 64-bit one.
    let r4 = core::hint::black_box(broadcast(&powers.r4));
    let s4 = times5(&r4);
    for m in steps {
        // Limbs below `2^26 + 2^9` after the product, below 2^27.1 with the
        // next blocks'.
        acc = mul_lanes(&acc, &r4, &s4, mask);
        for (a, b) in acc.iter_mut().zip(m) {
            *a = _mm256_add_epi64(*a, b);
        }
    }

    // Each lane times its last power, then the lanes summed: limbs below
    // 4 * (2^26 + 2^9) < 2^28.1.
    let last: Lanes = powers.last.map(|l| {
        // SAFETY: `l` is four `u64`s, 32 bytes; loadu has no alignment
        // requirement.
        unsafe { _mm256_loadu_si256(l.as_ptr().cast()) }
    });
    let acc = mul_lanes(&acc, &last, &times5(&last), mask);
    let mut sum: Limbs = [0; 5];
    for (s, v) in sum.iter_mut().zip(acc) {
        let mut lanes = [0u64; 4];
        // SAFETY: `lanes` is 32 bytes; storeu has no alignment requirement.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v) };
        *s = lanes.iter().sum();
        lanes.zeroize();
    }
    carry(&mut sum);
    // Back to radix 2^64: bits 0-103 from the four low limbs (the second
    // may reach 2^26 + 2^9, the sum still below 2^105), then the top limb's
    // low 24 bits at 104, its rest and the carry out of 2^128 into `h[2]`
    // (at most 3 + 1).
    let low = u128::from(sum[0])
        + (u128::from(sum[1]) << 26)
        + (u128::from(sum[2]) << 52)
        + (u128::from(sum[3]) << 78);
    let (value, over) = low.overflowing_add(u128::from(sum[4] & ((1 << 24) - 1)) << 104);
    h[0] = value as u64;
    h[1] = (value >> 64) as u64;
    h[2] = (sum[4] >> 24) + u64::from(over);
    sum.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limbs' value.
    fn value(l: &Limbs) -> (u128, u64) {
        let mut v = 0u128;
        let mut top = 0u64;
        for (i, &x) in l.iter().enumerate() {
            let shifted = u128::from(x) << (26 * i);
            let (s, o) = v.overflowing_add(shifted);
            v = s;
            top += u64::from(o) + if i == 4 { x >> 24 } else { 0 };
        }
        (v, top)
    }

    #[test]
    fn limbs_hold_the_number() {
        let (h0, h1, h2) = (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210, 3);
        let l = to_limbs(h0, h1, h2);
        assert!(l[..4].iter().all(|&x| x <= MASK));
        assert!(l[4] < (1 << 24) * (1 + h2));
        let low = u128::from(h0) | (u128::from(h1) << 64);
        assert_eq!(value(&l), (low, h2));
    }

    #[test]
    fn carry_keeps_the_value_mod_p_and_the_bounds() {
        // Limbs near 2^58, the most `mul` hands to `carry`.
        let mut l: Limbs = [(1 << 58) - 1; 5];
        let before = l;
        carry(&mut l);
        assert!(l[0] <= MASK && l[2] <= MASK && l[3] <= MASK && l[4] <= MASK);
        assert!(l[1] < (1 << 26) + (1 << 9), "second limb {:#x}", l[1]);
        // Same value mod p = 2^130 - 5: compare with a big-number sum.
        assert_eq!(mod_p(&before), mod_p(&l));
    }

    /// `sum l[i] * 2^(26 i) mod (2^130 - 5)`, by repeated folding, as
    /// (low 128 bits, bits 128 and 129).
    fn mod_p(l: &Limbs) -> (u128, u64) {
        // Limbs of 26 bits at most after a plain carry in u128.
        let mut w = [0u128; 6];
        for (i, &x) in l.iter().enumerate() {
            w[i] += u128::from(x);
        }
        loop {
            for i in 0..5 {
                w[i + 1] += w[i] >> 26;
                w[i] &= u128::from(MASK);
            }
            if w[5] == 0 {
                break;
            }
            w[0] += w[5] * 5;
            w[5] = 0;
        }
        let limbs: Limbs = std::array::from_fn(|i| w[i] as u64);
        let (v, top) = value(&limbs);
        // Below 2^130; p itself and up to 4 above reduce by one p.
        if top == 3 && v >= u128::MAX - 4 {
            (v.wrapping_add(5), 0)
        } else {
            (v, top)
        }
    }

    /// `absorb_avx2`, then `ymm0`-`ymm15` stored, with no code between the
    /// two that could use a vector register (the pointer is taken before
    /// the call; all vector registers are caller-saved, so nothing of the
    /// caller's is reloaded into one).
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn absorb_then_read_ymm(powers: &Powers, h: &mut [u64; 3], data: &[u8]) -> [u8; 512] {
        let mut out = [0u8; 512];
        let p = out.as_mut_ptr();
        // SAFETY: the CPU has AVX2 (the caller's promise).
        unsafe { absorb_avx2(powers, h, data) };
        // SAFETY: writes 16 x 32 bytes at `p`, into `out` (512 bytes);
        // reads the registers only.
        unsafe {
            core::arch::asm!(
                "vmovdqu [{p}], ymm0", "vmovdqu [{p} + 32], ymm1",
                "vmovdqu [{p} + 64], ymm2", "vmovdqu [{p} + 96], ymm3",
                "vmovdqu [{p} + 128], ymm4", "vmovdqu [{p} + 160], ymm5",
                "vmovdqu [{p} + 192], ymm6", "vmovdqu [{p} + 224], ymm7",
                "vmovdqu [{p} + 256], ymm8", "vmovdqu [{p} + 288], ymm9",
                "vmovdqu [{p} + 320], ymm10", "vmovdqu [{p} + 352], ymm11",
                "vmovdqu [{p} + 384], ymm12", "vmovdqu [{p} + 416], ymm13",
                "vmovdqu [{p} + 448], ymm14", "vmovdqu [{p} + 480], ymm15",
                p = in(reg) p,
                options(nostack, preserves_flags),
            );
        }
        out
    }

    /// The accumulator and the powers of `r` are secrets: none is left in
    /// a vector register once the AVX2 code returns (`vzeroall`; without
    /// it this fails).
    #[test]
    fn absorb_leaves_ymm0_to_ymm15_zeroed() {
        let Some(powers) = Powers::new(0x0fff_fffc_0fff_ffff, 0x0fff_fffc_0fff_fffc) else {
            eprintln!("this CPU has no AVX2: the code does not run here");
            return;
        };
        let data = vec![0xa7u8; 1024];
        let mut h = [3, 5, 1];
        // SAFETY: `Powers::new` gave `Some`: the CPU has AVX2.
        let regs = unsafe { absorb_then_read_ymm(&powers, &mut h, &data) };
        let nonzero = regs.iter().filter(|&&b| b != 0).count();
        assert_eq!(nonzero, 0, "{nonzero} nonzero bytes in ymm0-ymm15");
        assert_ne!(h, [3, 5, 1], "the blocks were absorbed");
    }
}
