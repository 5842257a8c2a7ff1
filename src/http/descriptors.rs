//! Open files: how many connections the listeners may hold without running the process out of
//! file descriptors.
//!
//! `AVS_MAX_CONNECTIONS` defaults to 10,000 while the usual soft `RLIMIT_NOFILE` is 1,024: past
//! it every accept fails, `/healthz` included, and the load balancer kills a healthy replica
//! (#20). So at start the soft limit is raised to the hard one (as Go's runtime and nginx's
//! `worker_rlimit_nofile` do), and each listener's cap is the lower of the setting and what
//! the limit leaves after a reserve for upstream and database connections, files and the
//! admin listener.

/// Descriptors kept out of the public listener's reach: the upstream and Oracle Health pools,
/// the database pool, the toggle file, the runtime's own, and the admin listener's share.
pub const RESERVE: u64 = 256;

/// Cached bodies (documents, and summaries' identity JSON) sealed in memory files at most
/// (`crate::sealed`): one descriptor each, taken only from what the public cap leaves over;
/// past it a body is kept in ordinary memory (a 64 MiB summary cache holds ~2,000 full ones).
pub const SEALED_DOCUMENTS: usize = 4096;

/// Connections the admin listener holds at most (part of [`RESERVE`]); it serves operators and
/// the metrics scraper, not the public.
pub const ADMIN_CONNECTIONS: usize = 64;

/// What the process may open and what each listener may therefore hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The soft limit the process serves with (after raising it, when it could).
    pub open_files: u64,
    pub public: usize,
    pub admin: usize,
    /// Documents that may be sealed (`crate::sealed`): the descriptors left after the public
    /// cap, at most [`SEALED_DOCUMENTS`]; none when the limit decided the cap.
    pub sealed: usize,
    /// Whether the limit, not the setting, decided the public cap.
    pub limited: bool,
}

impl Budget {
    /// The caps under an open-file limit of `open_files`, given the setting.
    pub fn under(open_files: u64, setting: usize) -> Budget {
        let room = usize::try_from(open_files.saturating_sub(RESERVE)).unwrap_or(usize::MAX);
        // At least one connection, even under an absurd limit, so the service still answers.
        let public = setting.min(room).max(1);
        Budget {
            open_files,
            public,
            admin: setting.min(ADMIN_CONNECTIONS),
            sealed: room.saturating_sub(public).min(SEALED_DOCUMENTS),
            limited: public < setting,
        }
    }

    /// What serving would have, without changing the process: the hard limit, which serving
    /// raises the soft one to (`check-config` prints this).
    pub fn planned(setting: usize) -> Budget {
        let hard = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
            Ok((_, hard)) => hard,
            Err(_) => u64::MAX,
        };
        Budget::under(hard, setting)
    }

    /// Raises the soft limit to the hard one and returns the caps under the result.
    pub fn raise(setting: usize) -> Budget {
        let open_files = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => limit,
            Err(e) => {
                tracing::warn!(error = %e, "could not raise the open-file limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(u64::MAX, |(soft, _)| soft)
            }
        };
        Budget::under(open_files, setting)
    }

    /// One line for `check-config` and the start-up log.
    pub fn describe(&self) -> String {
        if self.limited {
            format!(
                "connections: at most {} public (AVS_MAX_CONNECTIONS is lowered by the open-file limit {} less {RESERVE} reserved), {} admin",
                self.public, self.open_files, self.admin
            )
        } else {
            format!(
                "connections: at most {} public (AVS_MAX_CONNECTIONS; open-file limit {}), {} admin",
                self.public, self.open_files, self.admin
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_the_lower_of_the_setting_and_the_limit_less_the_reserve() {
        let low = Budget::under(1024, 10_000);
        assert_eq!((low.public, low.admin, low.limited), (768, 64, true));
        let high = Budget::under(1_048_576, 10_000);
        assert_eq!((high.public, high.limited), (10_000, false));
        assert_eq!(
            (low.sealed, high.sealed),
            (0, SEALED_DOCUMENTS),
            "documents use what connections leave"
        );
        assert_eq!(Budget::under(10_256 + 100, 10_000).sealed, 100);
        assert_eq!(Budget::under(100, 10_000).public, 1, "never zero");
        assert_eq!(Budget::under(u64::MAX, 5).admin, 5);
        assert!(
            low.describe().contains("at most 768 public"),
            "{}",
            low.describe()
        );
    }
}
