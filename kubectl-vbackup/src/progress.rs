//! The object progress bar of `backup create` and `restore create`.

use std::io::IsTerminal;
use std::time::Duration;

use vbackup_engine::resources::Progress;

/// A spinner counting objects, on stderr when it is a terminal; `None` otherwise (or when
/// `enabled` is false, e.g. in a background run nobody watches).
pub fn object_bar(enabled: bool) -> Option<indicatif::ProgressBar> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} objects  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

/// Shows the engine's progress on `bar`, if there is one.
pub fn show(bar: Option<&indicatif::ProgressBar>, p: &Progress) {
    if let Some(bar) = bar {
        bar.set_position(p.items);
        bar.set_message(p.resource.clone());
    }
}
