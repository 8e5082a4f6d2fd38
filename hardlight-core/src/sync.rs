//! Lock helpers for the server and the client, whose locks guard plain data whose every
//! update completes before the guard drops: a panic elsewhere cannot leave it
//! half-written, so a poisoned lock is used as is rather than spreading the panic to
//! every connection.
//!
//! ```
//! use std::sync::Mutex;
//! let count = Mutex::new(1);
//! *hardlight_core::sync::lock(&count) += 1;
//! assert_eq!(*hardlight_core::sync::lock(&count), 2);
//! ```

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, ignoring poisoning.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Read-locks `lock`, ignoring poisoning.
pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Write-locks `lock`, ignoring poisoning.
pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
