//! test cluster

pub mod admission;
