//! Developer tasks' reusable parts (the binary is `src/main.rs`): the krew package, which the
//! plugin's tests build from the debug binary to check `krew/vbackup.yaml`.

pub mod krew;
