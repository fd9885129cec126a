//! test cluster
