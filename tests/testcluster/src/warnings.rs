//! `Warning` response headers: code that runs while serving a request records warnings
//! (e.g. unknown fields under `fieldValidation=Warn`) without threading them through.

use std::cell::RefCell;

tokio::task_local! {
    /// Warnings of the request being served.
    pub static WARNINGS: RefCell<Vec<String>>;
}

/// Records a warning for the current request (ignored outside a request).
pub fn warn(message: String) {
    let _ = WARNINGS.try_with(|w| w.borrow_mut().push(message));
}
