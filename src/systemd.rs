//! systemd's notify protocol (`Type=notify`): READY once the first config is
//! loaded and migrations are done, a STATUS line an operator reads in
//! `systemctl status hlx`, WATCHDOG keep-alives while the scheduler ticks,
//! RELOADING around SIGHUP and STOPPING on shutdown.
//!
//! Without `NOTIFY_SOCKET` every call is a no-op, so `hlx daemon` runs the
//! same in a terminal. Send failures are logged, never fatal: a daemon must not
//! stop moving data because its supervisor's socket hiccupped.

use sd_notify::NotifyState;
use std::time::Duration;

/// Speaks to the service manager, if there is one.
#[derive(Clone, Debug)]
pub struct Notifier {
    enabled: bool,
    /// Half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) recommends; `None`
    /// when the unit has no `WatchdogSec=`.
    watchdog_every: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the environment.
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog_every: sd_notify::watchdog_enabled().map(|d| (d / 2).max(Duration::from_millis(100))),
        }
    }

    /// How often to send WATCHDOG=1.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog_every.filter(|_| self.enabled)
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        // One line: systemd shows STATUS= verbatim.
        let line = status.replace(['\n', '\r'], " ");
        self.send(&[NotifyState::Status(&line)]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// RELOADING=1 with the monotonic time systemd ≥ 253 requires.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!("cannot notify systemd: {e}");
        }
    }
}
