//! The Rabin fingerprint of a sliding window, with tables shared per polynomial.

use std::sync::{Arc, Mutex, PoisonError};

use crate::{Polynom, Polynom64};

/// Constants of the hash.
pub mod constants {
    use crate::Polynom64;

    /// The polynomial [`super::Rabin64::new`] uses (restic repositories carry their own).
    pub const MOD_POLYNOM: Polynom64 = 0x003D_A335_8B4D_C173;
}

/// A rolling hash over a window of the last bytes of a stream.
pub trait RollingHash64 {
    /// Empties the window and zeroes the hash.
    fn reset(&mut self);

    /// Slides in up to window size − 1 bytes from `iter`; returns how many it took.
    fn prefill_window<I>(&mut self, iter: &mut I) -> usize
    where
        I: Iterator<Item = u8>;

    /// Zeroes the hash and slides in up to window size − 1 bytes from `iter`, treating the
    /// bytes leaving the window as zeroes (they have no effect on a zero hash); returns how
    /// many bytes it took.
    fn reset_and_prefill_window<I>(&mut self, iter: &mut I) -> usize
    where
        I: Iterator<Item = u8>;

    /// Slides `byte` into the window, the oldest byte out.
    fn slide(&mut self, byte: u8);

    /// The hash of the window.
    fn get_hash(&self) -> &Polynom64;
}

/// What the hash precomputes for one polynomial and window size.
#[derive(Debug)]
struct Tables {
    window_size_nb_bits: u32,
    polynom: Polynom64,
    /// `out[b]` = b·x^(8·(window size − 1)) mod P: the contribution of byte `b` as it leaves.
    out: [Polynom64; 256],
    /// `reduce[b]` = (b·x^deg(P) mod P) | b·x^deg(P): cancels the top byte `b` after a shift.
    reduce: [Polynom64; 256],
}

/// Tables of the polynomials seen most recently, newest last. A process meets one polynomial
/// per repository it writes to; a few entries cover every realistic case and bound the memory
/// of a long-running process that visits many repositories.
static TABLES: Mutex<Vec<Arc<Tables>>> = Mutex::new(Vec::new());
const TABLES_KEPT: usize = 8;

fn shared_tables(window_size_nb_bits: u32, polynom: Polynom64) -> Arc<Tables> {
    let mut cache = TABLES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(pos) = cache
        .iter()
        .position(|t| t.polynom == polynom && t.window_size_nb_bits == window_size_nb_bits)
    {
        let tables = cache.remove(pos);
        cache.push(Arc::clone(&tables));
        return tables;
    }
    let window_size = 1usize << window_size_nb_bits;
    let tables = Arc::new(Tables {
        window_size_nb_bits,
        polynom,
        out: Rabin64::calculate_out_table(window_size, &polynom),
        reduce: Rabin64::calculate_mod_table(&polynom),
    });
    if cache.len() == TABLES_KEPT {
        let _oldest = cache.remove(0);
    }
    cache.push(Arc::clone(&tables));
    tables
}

/// Rabin's fingerprint of the last 2^n bytes, modulo an irreducible polynomial.
#[derive(Debug, Clone)]
pub struct Rabin64 {
    window_size: usize,
    window_size_mask: usize,
    /// Right shift that brings the byte about to overflow deg(P) down to bits 0–7.
    polynom_shift: i32,
    tables: Arc<Tables>,
    window_data: Vec<u8>,
    window_index: usize,
    /// The hash of the window.
    pub hash: Polynom64,
}

impl Rabin64 {
    /// The table of each byte's contribution once it is `window_size` − 1 bytes old.
    #[must_use]
    pub fn calculate_out_table(window_size: usize, mod_polynom: &Polynom64) -> [Polynom64; 256] {
        std::array::from_fn(|b| {
            let mut hash = (b as Polynom64).modulo(mod_polynom);
            for _ in 1..window_size {
                hash = (hash << 8).modulo(mod_polynom);
            }
            hash
        })
    }

    /// The table that reduces the hash after a byte was shifted in.
    #[must_use]
    pub fn calculate_mod_table(mod_polynom: &Polynom64) -> [Polynom64; 256] {
        let degree = mod_polynom.degree();
        std::array::from_fn(|b| {
            let top = (b as Polynom64) << degree;
            top.modulo(mod_polynom) | top
        })
    }

    /// A hash over 2^`window_size_nb_bits` bytes with [`constants::MOD_POLYNOM`].
    #[must_use]
    pub fn new(window_size_nb_bits: u32) -> Self {
        Self::new_with_polynom(window_size_nb_bits, &constants::MOD_POLYNOM)
    }

    /// A hash over 2^`window_size_nb_bits` bytes modulo `mod_polynom` (degree 8 to 63).
    /// The tables are computed on the first call for a polynomial and shared afterwards.
    #[must_use]
    pub fn new_with_polynom(window_size_nb_bits: u32, mod_polynom: &Polynom64) -> Self {
        let window_size = 1usize << window_size_nb_bits;
        Self {
            window_size,
            window_size_mask: window_size - 1,
            polynom_shift: mod_polynom.degree() - 8,
            tables: shared_tables(window_size_nb_bits, *mod_polynom),
            window_data: vec![0; window_size],
            window_index: 0,
            hash: 0,
        }
    }

    /// Shifts `byte` into the hash and the window without taking anything out.
    #[inline]
    fn push_in(&mut self, byte: u8) {
        self.window_data[self.window_index] = byte;
        let top = (self.hash >> self.polynom_shift) & 0xff;
        self.hash = ((self.hash << 8) | Polynom64::from(byte)) ^ self.tables.reduce[top as usize];
        self.window_index = (self.window_index + 1) & self.window_size_mask;
    }
}

impl RollingHash64 for Rabin64 {
    fn reset(&mut self) {
        self.window_data.fill(0);
        self.window_index = 0;
        self.hash = 0;
    }

    fn prefill_window<I>(&mut self, iter: &mut I) -> usize
    where
        I: Iterator<Item = u8>,
    {
        let mut taken = 0;
        for byte in iter.take(self.window_size - 1) {
            self.slide(byte);
            taken += 1;
        }
        taken
    }

    fn reset_and_prefill_window<I>(&mut self, iter: &mut I) -> usize
    where
        I: Iterator<Item = u8>,
    {
        self.hash = 0;
        let mut taken = 0;
        for byte in iter.take(self.window_size - 1) {
            self.push_in(byte);
            taken += 1;
        }
        // The slot the next byte goes to was not written above: its old byte must leave as 0.
        self.window_data[self.window_index] = 0;
        taken
    }

    #[inline]
    fn slide(&mut self, byte: u8) {
        let leaving = self.window_data[self.window_index];
        self.hash ^= self.tables.out[leaving as usize];
        self.push_in(byte);
    }

    #[inline]
    fn get_hash(&self) -> &Polynom64 {
        &self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint by its definition: the window's bytes as a polynomial, mod P.
    fn fingerprint(window: &[u8], polynom: Polynom64) -> Polynom64 {
        window.iter().fold(0, |hash: Polynom64, b| {
            ((hash << 8) | Polynom64::from(*b)).modulo(&polynom)
        })
    }

    #[test]
    fn sliding_hash_is_the_fingerprint_of_the_window() {
        let data: Vec<u8> = (0u32..300)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut rabin = Rabin64::new(5);
        for end in 1..=data.len() {
            rabin.slide(data[end - 1]);
            let window = &data[end.saturating_sub(32)..end];
            assert_eq!(
                rabin.hash,
                fingerprint(window, constants::MOD_POLYNOM),
                "at {end}"
            );
        }
    }

    // One test: the cache is process-wide, so a parallel test filling it could evict
    // entries between two assertions.
    #[test]
    fn tables_are_shared_per_polynomial_and_window_and_the_cache_stays_bounded() {
        let a = Rabin64::new_with_polynom(6, &0x0020_0000_0000_001b);
        let b = Rabin64::new_with_polynom(6, &0x0020_0000_0000_001b);
        let c = Rabin64::new_with_polynom(5, &0x0020_0000_0000_001b);
        assert!(Arc::ptr_eq(&a.tables, &b.tables));
        assert!(!Arc::ptr_eq(&a.tables, &c.tables));

        let polys: Vec<Polynom64> = (0..20).map(|i| (1 << 53) | (i << 1) | 1).collect();
        for p in &polys {
            let _ = Rabin64::new_with_polynom(6, p);
        }
        assert_eq!(TABLES.lock().unwrap().len(), TABLES_KEPT);
        let first = Rabin64::new_with_polynom(6, &polys[0]);
        assert_eq!(
            first.tables.out,
            Rabin64::calculate_out_table(64, &polys[0])
        );
        assert_eq!(first.tables.reduce, Rabin64::calculate_mod_table(&polys[0]));
    }
}
