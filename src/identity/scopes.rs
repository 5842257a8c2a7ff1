//! A service token's scopes: URLs or paths, each covering a route by whole path segments.

use url::Url;

/// The path of a scope: scopes are URLs (`http://host/avs/v0/avs/links`) or bare paths.
pub(super) fn scope_path(scope: &str) -> Option<String> {
    let path = match Url::parse(scope) {
        Ok(url) => url.path().to_owned(),
        Err(_) if scope.starts_with('/') => scope.to_owned(),
        Err(_) => return None,
    };
    Some(path.trim_end_matches('/').to_owned())
}

/// Whether a scope's path covers `path`, by whole segments (`/avs/v0` covers
/// `/avs/v0/avs/links`, not `/avs/v0x`), as vets-api's STS prefix check is meant.
pub fn scope_covers(scope: &str, path: &str) -> bool {
    scope.is_empty()
        || path
            .strip_prefix(scope)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_cover_whole_segments() {
        assert_eq!(
            scope_path("http://localhost:3000/avs/v0/avs/links").as_deref(),
            Some("/avs/v0/avs/links")
        );
        assert_eq!(scope_path("/avs/v0/").as_deref(), Some("/avs/v0"));
        assert_eq!(scope_path("avs"), None);
        assert!(scope_covers("/avs/v0", "/avs/v0/avs/links"));
        assert!(scope_covers("/avs/v0/avs/links", "/avs/v0/avs/links"));
        assert!(!scope_covers(
            "/avs/v0/avs/links",
            "/avs/v0/avs/9A7AF40B2BC2471EA116891839113252"
        ));
        assert!(!scope_covers("/avs/v0", "/avs/v0x/avs"));
        assert!(scope_covers("", "/anything"));
    }
}
