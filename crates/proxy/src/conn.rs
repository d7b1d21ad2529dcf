//! The registry of live proxied connections, and the per-connection handle faults act on.
//!
//! A [`ConnHandle`] is shared by the four pump futures of a connection, the fault board (which
//! resets or closes connections when `reset`/`close` start) and the control API (which lists
//! them). It holds what the proxy learns as the connection runs — the MQTT client id and protocol
//! version from CONNECT, byte counts — and a kill switch the pumps watch.

use crate::faults::ConnAction;
use linecut_events::Leg;
use linecut_mqtt::Version;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tokio::sync::watch;

/// Why and how a connection is being ended by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    pub action: ConnAction,
    pub reason: String,
}

#[derive(Debug)]
pub struct ConnHandle {
    pub id: u64,
    pub client_addr: SocketAddr,
    pub opened_at: Instant,
    pub opened_us: i64,
    client_id: OnceLock<String>,
    /// MQTT protocol level from CONNECT; 0 while unknown.
    version: AtomicU8,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    client_leg_closed: AtomicBool,
    upstream_leg_closed: AtomicBool,
    /// A SUBACK came down this connection: its client is subscribed (the runner starts the
    /// experiment clock on this for clients that report nothing themselves).
    subscribed: AtomicBool,
    /// When a unit was last read from either side, in nanoseconds after `opened_at`: an
    /// idle-timeout middlebox's timer.
    last_read_ns: AtomicU64,
    /// An idle-timeout middlebox forgot this connection: nothing crosses it any more.
    forgotten: AtomicBool,
    kill: watch::Sender<Option<Kill>>,
}

impl ConnHandle {
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.get().map(String::as_str)
    }

    pub(crate) fn set_client_id(&self, id: &str) {
        let _ = self.client_id.set(id.to_string());
    }

    pub fn version(&self) -> Option<Version> {
        Version::from_level(self.version.load(Ordering::Acquire))
    }

    pub(crate) fn set_version(&self, version: Version) {
        self.version.store(version.level(), Ordering::Release);
    }

    /// True once a SUBACK has come down this connection.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    pub(crate) fn note_suback(&self) {
        self.subscribed.store(true, Ordering::Release);
    }

    /// When a unit was last read from either side (the connection's opening before any).
    pub(crate) fn last_read(&self) -> Instant {
        self.opened_at + std::time::Duration::from_nanos(self.last_read_ns.load(Ordering::Acquire))
    }

    /// A unit was read at `now`.
    pub(crate) fn touch(&self, now: Instant) {
        let ns = now.saturating_duration_since(self.opened_at).as_nanos() as u64;
        self.last_read_ns.fetch_max(ns, Ordering::AcqRel);
    }

    /// Marks the connection forgotten; true only for the first caller, who tells it.
    pub(crate) fn forget(&self) -> bool {
        !self.forgotten.swap(true, Ordering::AcqRel)
    }

    pub fn is_forgotten(&self) -> bool {
        self.forgotten.load(Ordering::Acquire)
    }

    /// Asks the pumps to end the connection. A reset overrides a close in progress; otherwise the
    /// first request wins.
    pub fn kill(&self, action: ConnAction, reason: impl Into<String>) {
        let reason = reason.into();
        self.kill.send_if_modified(|current| {
            let replace = match current {
                None => true,
                Some(k) => k.action == ConnAction::Close && action == ConnAction::Reset,
            };
            if replace {
                *current = Some(Kill { action, reason });
            }
            replace
        });
    }

    pub(crate) fn watch_kill(&self) -> watch::Receiver<Option<Kill>> {
        self.kill.subscribe()
    }

    /// Whether `leg` has ended.
    pub(crate) fn leg_closed(&self, leg: Leg) -> bool {
        match leg {
            Leg::Client => &self.client_leg_closed,
            Leg::Upstream => &self.upstream_leg_closed,
        }
        .load(Ordering::Acquire)
    }

    /// Records that `leg` has ended; true only for the first caller, who logs it.
    pub(crate) fn mark_leg_closed(&self, leg: Leg) -> bool {
        let flag = match leg {
            Leg::Client => &self.client_leg_closed,
            Leg::Upstream => &self.upstream_leg_closed,
        };
        !flag.swap(true, Ordering::AcqRel)
    }
}

/// Live connections by id.
#[derive(Debug, Default)]
pub struct ConnRegistry {
    conns: Mutex<BTreeMap<u64, Arc<ConnHandle>>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
}

impl ConnRegistry {
    pub(crate) fn open(&self, client_addr: SocketAddr) -> Arc<ConnHandle> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let (kill, _) = watch::channel(None);
        let handle = Arc::new(ConnHandle {
            id,
            client_addr,
            opened_at: Instant::now(),
            opened_us: linecut_events::now_us(),
            client_id: OnceLock::new(),
            version: AtomicU8::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            client_leg_closed: AtomicBool::new(false),
            upstream_leg_closed: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            last_read_ns: AtomicU64::new(0),
            forgotten: AtomicBool::new(false),
            kill,
        });
        self.lock().insert(id, handle.clone());
        handle
    }

    pub(crate) fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// A snapshot of the live connections, oldest first.
    pub fn live(&self) -> Vec<Arc<ConnHandle>> {
        self.lock().values().cloned().collect()
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<ConnHandle>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
}
