//! Shutdown as a value passed into every run: runs check it at batch
//! boundaries, so a stop request lets the current batch commit (or roll back)
//! and starts no new one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cloneable stop flag with a way to wait for it.
#[derive(Clone, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves once [`Shutdown::trigger`] was called.
    pub async fn wait(&self) {
        while !self.is_triggered() {
            let n = self.notify.notified();
            if self.is_triggered() {
                break;
            }
            n.await;
        }
    }
}
