//! The shared-table hash gives exactly what crates.io's rustic_cdc 0.3.1 gives: the same
//! tables, the same hash after every byte, and the same chunk boundaries when driven the way
//! rustic_core 0.13's chunker drives it.

use rustic_cdc::{Polynom, Rabin64, RollingHash64};
use rustic_cdc_upstream as upstream;
use upstream::RollingHash64 as _;

/// Polynomials of degree 53 like the ones restic and rustic_core draw for a repository.
const POLYNOMS: [u64; 4] = [
    0x003D_A335_8B4D_C173,
    0x0020_0000_0000_001B,
    0x003F_FFFF_FFFF_FFFF,
    0x0031_5F2A_9C4E_7D01,
];

/// Deterministic bytes (xorshift64), half of them in runs so that low-entropy data is covered.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if state.is_multiple_of(4) {
            let run = (state >> 8) as usize % 4096;
            out.extend(std::iter::repeat_n((state >> 32) as u8, run));
        } else {
            out.extend_from_slice(&state.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

#[test]
fn polynomial_arithmetic_matches() {
    for (i, p) in POLYNOMS.iter().enumerate() {
        for q in [3u64, 0x1b, 0x11d, 1 << 40 | 5, *p] {
            let a = p.wrapping_mul(0x9E37_79B9_7F4A_7C15 >> i);
            assert_eq!(
                Polynom::modulo(&a, &q),
                upstream::Polynom::modulo(&a, &q),
                "{a:#x} mod {q:#x}"
            );
        }
        assert_eq!(Polynom::degree(p), upstream::Polynom::degree(p));
    }
}

#[test]
fn tables_match() {
    for p in POLYNOMS {
        assert_eq!(
            Rabin64::calculate_mod_table(&p),
            upstream::Rabin64::calculate_mod_table(&p)
        );
        for window in [16, 32, 64, 128] {
            assert_eq!(
                Rabin64::calculate_out_table(window, &p),
                upstream::Rabin64::calculate_out_table(window, &p),
                "window {window}, polynomial {p:#x}"
            );
        }
    }
}

#[test]
fn hash_after_every_operation_matches() {
    let bytes = data(200_000, 7);
    for p in POLYNOMS {
        for bits in [5, 6, 7] {
            let mut ours = Rabin64::new_with_polynom(bits, &p);
            let mut theirs = upstream::Rabin64::new_with_polynom(bits, &p);
            // Interleave every entry point, including short prefills that leave old window
            // bytes in place (upstream keeps them; so must we).
            for (i, piece) in bytes.chunks(997).enumerate() {
                match i % 5 {
                    0 => {
                        let mut a = piece[..piece.len().min(40)].iter().copied();
                        let mut b = a.clone();
                        assert_eq!(
                            ours.reset_and_prefill_window(&mut a),
                            theirs.reset_and_prefill_window(&mut b)
                        );
                    }
                    1 => {
                        let mut a = piece.iter().copied();
                        let mut b = a.clone();
                        assert_eq!(ours.prefill_window(&mut a), theirs.prefill_window(&mut b));
                    }
                    2 => {
                        ours.reset();
                        theirs.reset();
                    }
                    _ => {
                        let mut a = piece.iter().copied();
                        let mut b = a.clone();
                        assert_eq!(
                            ours.reset_and_prefill_window(&mut a),
                            theirs.reset_and_prefill_window(&mut b)
                        );
                    }
                }
                assert_eq!(ours.hash, theirs.hash);
                for &byte in piece {
                    ours.slide(byte);
                    theirs.slide(byte);
                    assert_eq!(*ours.get_hash(), *theirs.get_hash(), "polynomial {p:#x}");
                }
            }
        }
    }
}

/// Cut points of rustic_core 0.13's Rabin chunker (`chunker/rabin.rs`): read `min` bytes,
/// prefill the window with the last 64 of them, then slide until the hash has its low
/// `log2(avg)` bits zero or the chunk reaches `max`.
fn boundaries<H: FnMut(Option<&[u8]>, Option<u8>) -> u64>(
    bytes: &[u8],
    min: usize,
    avg: usize,
    max: usize,
    mut hash: H,
) -> Vec<usize> {
    let mask = avg as u64 - 1;
    let mut cuts = Vec::new();
    let mut start = 0;
    while bytes.len() - start > min {
        let mut end = start + min;
        let mut h = hash(Some(&bytes[end - 64..end]), None);
        while end - start < max && h & mask != 0 && end < bytes.len() {
            h = hash(None, Some(bytes[end]));
            end += 1;
        }
        cuts.push(end);
        start = end;
    }
    cuts
}

#[test]
fn chunk_boundaries_match_with_restic_parameters_and_small_ones() {
    // restic's sizes (512 KiB min, 1 MiB average, 8 MiB max) on 24 MiB, and 16 KiB / 64 KiB /
    // 256 KiB on 4 MiB for many more cuts.
    let cases = [
        (data(24 << 20, 11), 512 << 10, 1 << 20, 8 << 20),
        (data(4 << 20, 13), 16 << 10, 64 << 10, 256 << 10),
    ];
    for p in [POLYNOMS[0], POLYNOMS[3]] {
        for (bytes, min, avg, max) in &cases {
            let mut ours = Rabin64::new_with_polynom(6, &p);
            let mut theirs = upstream::Rabin64::new_with_polynom(6, &p);
            let a = boundaries(bytes, *min, *avg, *max, |prefill, byte| {
                match (prefill, byte) {
                    (Some(w), _) => _ = ours.reset_and_prefill_window(&mut w.iter().copied()),
                    (None, Some(b)) => ours.slide(b),
                    _ => {}
                }
                ours.hash
            });
            let b = boundaries(bytes, *min, *avg, *max, |prefill, byte| {
                match (prefill, byte) {
                    (Some(w), _) => _ = theirs.reset_and_prefill_window(&mut w.iter().copied()),
                    (None, Some(b)) => theirs.slide(b),
                    _ => {}
                }
                theirs.hash
            });
            assert_eq!(a, b, "polynomial {p:#x}, average {avg}");
            // Content-defined cuts, not only max-size ones, or the test proves little.
            let cdc_cuts = a.windows(2).filter(|w| w[1] - w[0] < *max).count();
            assert!(
                cdc_cuts >= 3,
                "only {cdc_cuts} content-defined cuts in {a:?}"
            );
        }
    }
}
