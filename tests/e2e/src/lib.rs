//! End-to-end tests of vbackup across crates live in `tests/`; this library is empty.
