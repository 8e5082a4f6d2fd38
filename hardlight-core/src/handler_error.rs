//! The default error type of handlers.

use std::fmt;

/// The result type of RPC methods.
///
/// `HandlerResult<T>` uses [`HandlerError`]; `HandlerResult<T, MyError>` lets a handler
/// return its own `#[codable]` error type, which the client receives typed.
pub type HandlerResult<T, E = HandlerError> = Result<T, E>;

/// A handler's error with a message, the default error of [`HandlerResult`].
///
/// Any `std::error::Error` converts into it, so `?` works in handlers:
///
/// ```
/// use hardlight_core::{HandlerError, HandlerResult};
/// fn parse(input: &str) -> HandlerResult<u32> {
///     Ok(input.parse::<u32>()?)
/// }
/// assert_eq!(parse("x").unwrap_err().message(), "invalid digit found in string");
/// let e = HandlerError::new("counter is locked");
/// assert_eq!(e.to_string(), "counter is locked");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct HandlerError {
    message: String,
}

impl crate::schema::Schema for HandlerError {
    fn describe(layout: &mut crate::schema::Layout) {
        layout.named::<Self>("HandlerError", |l| {
            l.structure(&[("message", <String as crate::schema::Schema>::describe)])
        });
    }
}

impl HandlerError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self::new(error.to_string())
    }
}
