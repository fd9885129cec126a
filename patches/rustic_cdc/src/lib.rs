//! The Rabin64 rolling hash rustic_core's content-defined chunker uses, as in rustic_cdc 0.3.1
//! (same items, same hashes, hence the same chunk boundaries as restic), with one change:
//! the two 256-entry tables, a pure function of the polynomial and the window size, are
//! computed once per process and shared.
//!
//! rustic_core creates a [`Rabin64`] for every file it backs up. Upstream computes the tables
//! in [`Rabin64::new_with_polynom`], about 16,000 polynomial reductions: a third of the CPU of
//! a backup of 20,000 files, and 71 % of one of 300,000 small files (BENCHMARKS.md).
//!
//! Only what rustic_core uses is provided: [`Polynom`], [`Polynom64`], [`Rabin64`] and
//! [`RollingHash64`] (rustic_cdc's separator and tree iterators are not).

mod polynom;
mod rabin;

pub use polynom::{Polynom, Polynom64};
pub use rabin::{Rabin64, RollingHash64, constants};
