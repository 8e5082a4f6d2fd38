//! Text cut to fit a field of bounded size.

/// `text` cut to at most `max` bytes, at a character boundary.
///
/// ```
/// use hardlight_core::text::truncated;
/// assert_eq!(truncated("héllo", 2), "h");
/// assert_eq!(truncated("héllo", 3), "hé");
/// assert_eq!(truncated("hi", 10), "hi");
/// ```
pub fn truncated(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
