//! Instants from durations that never panic: every `instant + duration` in the crate goes
//! through here, so no setting (`Duration::MAX` included) can overflow a clock.

use std::time::Duration;

use tokio::time::Instant;

/// How far ahead an instant that cannot be expressed is put: about 30 years, as tokio's own
/// "far future" for a `sleep` too long to express.
pub(crate) const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `after` from now, or `None` when that instant cannot be expressed (a limit that far is no
/// limit).
pub(crate) fn deadline_after(after: Duration) -> Option<Instant> {
    Instant::now().checked_add(after)
}

/// `after` from `from`, saturating at [`FAR`] ahead of it (and at `from` itself when even that
/// cannot be expressed).
pub(crate) fn later(from: Instant, after: Duration) -> Instant {
    from.checked_add(after.min(FAR))
        .or_else(|| from.checked_add(FAR))
        .unwrap_or(from)
}

/// `after` from now, saturating as [`later`].
pub(crate) fn soon_after(after: Duration) -> Instant {
    later(Instant::now(), after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_overflows() {
        assert!(deadline_after(Duration::MAX).is_none());
        assert!(deadline_after(Duration::from_secs(1)).is_some());
        let now = Instant::now();
        assert!(later(now, Duration::MAX) > now);
        assert_eq!(
            Some(later(now, Duration::from_secs(1))),
            now.checked_add(Duration::from_secs(1))
        );
        assert!(soon_after(Duration::MAX) > now);
    }
}
