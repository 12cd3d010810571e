//! HTTP implementation of [`Directory`] for the 1Password SCIM bridge.
//!
//! Every request goes through [`crate::http_retry`]: 429, 5xx and timeouts are retried with
//! backoff, never past the invocation's deadline; requests in flight are bounded across every
//! clone; a 401 re-reads the bearer token once (rotation).

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;
use url::Url;

use crate::http_retry::{
    Attempt, BaseUrlError, HttpClient, Reply, RetryPolicy, Verdict, describe_transport, is_transient, join_url,
    parse_base_url,
};
use crate::secrets::SecretString;

use super::{
    CreateOutcome, Directory, GROUP_SCHEMA, ListResponse, NewUser, PatchOperation, PatchRequest, ScimError,
    ScimErrorBody, ScimGroup, ScimGroupId, ScimUser, ScimUserId, quote_filter_value,
};

/// Where the bridge is and how to authenticate. `base_url` includes the SCIM base path
/// (`https://scim.example.com/scim` or `/scim/v2`).
#[derive(Debug, Clone)]
pub struct BridgeCredentials {
    pub base_url: String,
    pub token: SecretString,
}

#[async_trait]
pub trait CredentialProvider: Send + Sync {
    async fn current(&self) -> Result<Arc<BridgeCredentials>, ScimError>;
    /// Re-reads the credentials from their source (after a 401: the token was rotated).
    async fn refresh(&self) -> Result<Arc<BridgeCredentials>, ScimError>;
}

/// Fixed credentials: tests, the local stack.
pub struct StaticCredentials(Arc<BridgeCredentials>);

impl StaticCredentials {
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        StaticCredentials(Arc::new(BridgeCredentials { base_url: base_url.into(), token: SecretString::new(token) }))
    }
}

#[async_trait]
impl CredentialProvider for StaticCredentials {
    async fn current(&self) -> Result<Arc<BridgeCredentials>, ScimError> {
        Ok(self.0.clone())
    }
    async fn refresh(&self) -> Result<Arc<BridgeCredentials>, ScimError> {
        Ok(self.0.clone())
    }
}

#[derive(Debug, Clone)]
pub struct ScimClientConfig {
    /// Requests in flight at once, across every clone of the client. The bridge is a
    /// single instance; 1–2 keep it responsive (docs/external-facts.md).
    pub concurrency: usize,
    /// Retries, backoff and per-request timeout.
    pub retry: RetryPolicy,
    /// Accept `http://` bridge URLs (local stack and tests only).
    pub allow_http: bool,
    /// Page size when listing.
    pub page_size: usize,
}

impl Default for ScimClientConfig {
    fn default() -> Self {
        ScimClientConfig { concurrency: 2, retry: RetryPolicy::default(), allow_http: false, page_size: 100 }
    }
}

#[derive(Clone)]
pub struct ScimClient {
    http: HttpClient,
    credentials: Arc<dyn CredentialProvider>,
    allow_http: bool,
    page_size: usize,
    deadline: Option<Instant>,
    /// What the bridge was seen to do with a user filter, shared by every clone: learnt once
    /// per process, so an ignoring or rejecting bridge costs one wasted request, not one per
    /// event.
    user_filters: Arc<FilterSupport>,
    /// The same for the member filter on groups, probed before its first use: its answers
    /// carry no members to check them by.
    group_filters: Arc<FilterSupport>,
}

/// How a bridge answered filters so far.
#[derive(Debug, Default)]
struct FilterSupport(AtomicU8);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filtering {
    /// Not tried yet.
    Untested,
    /// Not contradicted yet.
    Trusted,
    /// The answer contained users the filter excludes, or more than came back.
    Ignored,
    /// 400.
    Rejected,
}

impl FilterSupport {
    fn get(&self) -> Filtering {
        match self.0.load(Ordering::Relaxed) {
            1 => Filtering::Trusted,
            2 => Filtering::Ignored,
            3 => Filtering::Rejected,
            _ => Filtering::Untested,
        }
    }

    /// Records what was seen; returns whether it is news.
    fn learn(&self, seen: Filtering) -> bool {
        let code = match seen {
            Filtering::Untested => 0,
            Filtering::Trusted => 1,
            Filtering::Ignored => 2,
            Filtering::Rejected => 3,
        };
        let news = self.0.swap(code, Ordering::Relaxed) != code;
        if news && matches!(seen, Filtering::Ignored | Filtering::Rejected) {
            metrics::counter!("scim_filter_fallback").increment(1);
        }
        news
    }
}

fn warn_user_filter_fallback(seen: Filtering) {
    let how = match seen {
        Filtering::Rejected => "rejects user filters (400)",
        _ => "ignores user filters (its answer had users the filter excludes)",
    };
    tracing::warn!(
        "the bridge {how}: users are found by listing every user from now on, which costs a request per page"
    );
}

impl ScimClient {
    pub fn new(credentials: Arc<dyn CredentialProvider>, config: ScimClientConfig) -> Result<Self, ScimError> {
        let http = HttpClient::new("scim", config.retry)
            .map_err(|e| ScimError::Transport(describe_transport(&e).to_owned()))?
            .with_concurrency_limit(config.concurrency);
        Ok(ScimClient {
            http,
            credentials,
            allow_http: config.allow_http,
            page_size: config.page_size.max(1),
            deadline: None,
            user_filters: Arc::default(),
            group_filters: Arc::default(),
        })
    }

    fn url(&self, base: &str, segments: &[&str]) -> Result<Url, ScimError> {
        let base = parse_base_url(base, self.allow_http).map_err(|error| match error {
            BaseUrlError::Insecure => ScimError::InsecureUrl,
            other => ScimError::InvalidUrl(other.to_string()),
        })?;
        Ok(join_url(&base, segments))
    }

    /// Sends one logical request, with retries. Returns the final status and body for the
    /// caller to interpret (including 4xx other than 401).
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, Vec<u8>), ScimError> {
        // A URL resolves `.` and `..` to the parent collection (`DELETE /Users/..` would be
        // `DELETE /Users`); no resource has such an id, so it is not found, without a call.
        if segments.iter().skip(1).any(|id| matches!(*id, "" | "." | "..")) {
            return Ok((StatusCode::NOT_FOUND, Vec::new()));
        }
        let operation = format!("{method} /{}", segments.first().copied().unwrap_or(""));
        let build = |attempt: Attempt| {
            let method = method.clone();
            async move {
                let credentials = if attempt.refresh_credentials {
                    metrics::counter!("scim_token_refreshes").increment(1);
                    self.credentials.refresh().await?
                } else {
                    self.credentials.current().await?
                };
                let mut request = self
                    .http
                    .http()
                    .request(method, self.url(&credentials.base_url, segments)?)
                    .bearer_auth(credentials.token.expose())
                    .header(reqwest::header::ACCEPT, "application/scim+json, application/json")
                    .query(query);
                if let Some(body) = body {
                    request =
                        request.header(reqwest::header::CONTENT_TYPE, "application/scim+json").body(body.to_string());
                }
                Ok(request)
            }
        };
        self.http.send(&operation, self.deadline, build, |reply, attempt| classify(&operation, reply, attempt)).await
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
        accept: &[StatusCode],
    ) -> Result<T, ScimError> {
        let (status, body) = self.send(method, segments, query, body).await?;
        if !accept.contains(&status) {
            return Err(status_error(status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| ScimError::Decode(e.to_string()))
    }

    /// One filtered query; `keep` re-checks every returned user. A bridge that rejects the
    /// filter (400) or ignores it (users the filter excludes, or more than came back) gets
    /// the same question answered by listing every user, now and for the rest of the process.
    async fn query_users(&self, filter: String, keep: impl Fn(&ScimUser) -> bool) -> Result<Vec<ScimUser>, ScimError> {
        if matches!(self.user_filters.get(), Filtering::Untested | Filtering::Trusted) {
            let query = [("filter", filter), ("startIndex", "1".to_owned()), ("count", "10".to_owned())];
            let (status, body) = self.send(Method::GET, &["Users"], &query, None).await?;
            match status {
                StatusCode::OK => {
                    let page: ListResponse<ScimUser> =
                        serde_json::from_slice(&body).map_err(|e| ScimError::Decode(e.to_string()))?;
                    let contradicted =
                        page.total_results > page.resources.len() || page.resources.iter().any(|user| !keep(user));
                    if !contradicted {
                        self.user_filters.learn(Filtering::Trusted);
                        return Ok(page.resources);
                    }
                    if self.user_filters.learn(Filtering::Ignored) {
                        warn_user_filter_fallback(Filtering::Ignored);
                    }
                }
                StatusCode::BAD_REQUEST => {
                    if self.user_filters.learn(Filtering::Rejected) {
                        warn_user_filter_fallback(Filtering::Rejected);
                    }
                }
                other => return Err(status_error(other, &body)),
            }
        }
        let everyone: Vec<ScimUser> = self.list_all(&["Users"], &[]).await?;
        Ok(everyone.into_iter().filter(|user| keep(user)).collect())
    }

    /// Every page of a listing. A short page is not the end (a bridge may cap `count`):
    /// `totalResults` is, or an empty page.
    async fn list_all<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        extra: &[(&str, String)],
    ) -> Result<Vec<T>, ScimError> {
        let mut all = Vec::new();
        let mut start_index = 1usize;
        loop {
            let page: ListResponse<T> = self.page(segments, extra, start_index, self.page_size).await?;
            let received = page.resources.len();
            all.extend(page.resources);
            if received == 0 || all.len() >= page.total_results {
                return Ok(all);
            }
            start_index += received;
        }
    }

    async fn page<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        extra: &[(&str, String)],
        start_index: usize,
        count: usize,
    ) -> Result<ListResponse<T>, ScimError> {
        let mut query = vec![("startIndex", start_index.to_string()), ("count", count.to_string())];
        query.extend(extra.iter().cloned());
        self.send_json(Method::GET, segments, &query, None, &[StatusCode::OK]).await
    }
}

/// An id no user has, for probing the member filter.
const PROBE_USER_ID: &str = "member-filter-probe-no-such-user";

impl ScimClient {
    async fn any_group(&self) -> Result<bool, ScimError> {
        let page: ListResponse<CatalogueEntry> =
            self.page(&["Groups"], &[("excludedAttributes", "members".to_owned())], 1, 1).await?;
        Ok(page.total_results > 0 || !page.resources.is_empty())
    }

    /// `members[value eq …]` with only `displayName` asked for; `None` on a 400.
    async fn query_groups_with_member(&self, user: &ScimUserId) -> Result<Option<Vec<ScimGroup>>, ScimError> {
        let filter = format!("members[value eq {}]", quote_filter_value(user.as_str()));
        let query = [("filter", filter), ("attributes", "displayName".to_owned())];
        let groups: Vec<ScimGroup> = match self.list_all(&["Groups"], &query).await {
            Ok(groups) => groups,
            Err(ScimError::Status { status: 400, .. }) => return Ok(None),
            Err(other) => return Err(other),
        };
        // A bridge that ignores `attributes` shows members: then they must include the user.
        let contradicted = groups.iter().any(|group| group.has_member(user) == Some(false));
        Ok((!contradicted).then_some(groups))
    }
}

/// A catalogue entry: `members` is never read, so a bridge that ignores
/// `excludedAttributes` costs bytes on the wire but no memory.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CatalogueEntry {
    id: ScimGroupId,
    display_name: String,
    #[serde(default)]
    meta: Option<super::ScimMeta>,
}

#[async_trait]
impl Directory for ScimClient {
    fn until(self: Arc<Self>, deadline: Instant) -> Arc<dyn Directory> {
        Arc::new(ScimClient { deadline: Some(deadline), ..(*self).clone() })
    }

    async fn find_user(&self, external_id: &str, user_name: Option<&str>) -> Result<Option<ScimUser>, ScimError> {
        let by_external_id = |user: &ScimUser| user.external_id.as_deref() == Some(external_id);
        let by_user_name = |user: &ScimUser| user_name.is_some_and(|name| user.user_name.eq_ignore_ascii_case(name));
        let mut filter = format!("externalId eq {}", quote_filter_value(external_id));
        if let Some(name) = user_name {
            filter.push_str(&format!(" or userName eq {}", quote_filter_value(name)));
        }
        let found = self.query_users(filter, |user| by_external_id(user) || by_user_name(user)).await?;
        let preferred = found.iter().position(by_external_id).unwrap_or(0);
        Ok(found.into_iter().nth(preferred))
    }

    async fn find_user_by_user_name(&self, user_name: &str) -> Result<Option<ScimUser>, ScimError> {
        let filter = format!("userName eq {}", quote_filter_value(user_name));
        let found = self.query_users(filter, |user| user.user_name.eq_ignore_ascii_case(user_name)).await?;
        Ok(found.into_iter().next())
    }

    async fn get_user(&self, id: &ScimUserId) -> Result<Option<ScimUser>, ScimError> {
        let (status, body) = self.send(Method::GET, &["Users", id.as_str()], &[], None).await?;
        match status {
            StatusCode::OK => serde_json::from_slice(&body).map(Some).map_err(|e| ScimError::Decode(e.to_string())),
            StatusCode::NOT_FOUND => Ok(None),
            other => Err(status_error(other, &body)),
        }
    }

    async fn create_user(&self, user: &NewUser) -> Result<CreateOutcome, ScimError> {
        let body = serde_json::to_value(user).map_err(|e| ScimError::Decode(e.to_string()))?;
        let (status, response) = self.send(Method::POST, &["Users"], &[], Some(&body)).await?;
        match status {
            // The hosted bridge answers 200, the RFC says 201: accept both.
            StatusCode::OK | StatusCode::CREATED => serde_json::from_slice(&response)
                .map(CreateOutcome::Created)
                .map_err(|e| ScimError::Decode(e.to_string())),
            StatusCode::CONFLICT => Ok(CreateOutcome::Conflict),
            other => Err(status_error(other, &response)),
        }
    }

    async fn patch_user(&self, id: &ScimUserId, operations: Vec<PatchOperation>) -> Result<(), ScimError> {
        self.patch(&["Users", id.as_str()], &[], operations).await
    }

    async fn delete_user(&self, id: &ScimUserId) -> Result<(), ScimError> {
        let (status, body) = self.send(Method::DELETE, &["Users", id.as_str()], &[], None).await?;
        match status {
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            other => Err(status_error(other, &body)),
        }
    }

    async fn list_users(&self, start_index: usize, count: usize) -> Result<ListResponse<ScimUser>, ScimError> {
        self.page(&["Users"], &[], start_index.max(1), count.max(1)).await
    }

    async fn list_groups(&self) -> Result<Vec<ScimGroup>, ScimError> {
        let entries: Vec<CatalogueEntry> =
            self.list_all(&["Groups"], &[("excludedAttributes", "members".to_owned())]).await?;
        Ok(entries
            .into_iter()
            .map(|entry| ScimGroup { id: entry.id, display_name: entry.display_name, members: None, meta: entry.meta })
            .collect())
    }

    async fn get_group(&self, id: &ScimGroupId) -> Result<Option<ScimGroup>, ScimError> {
        let (status, body) = self.send(Method::GET, &["Groups", id.as_str()], &[], None).await?;
        match status {
            StatusCode::OK => serde_json::from_slice(&body).map(Some).map_err(|e| ScimError::Decode(e.to_string())),
            StatusCode::NOT_FOUND => Ok(None),
            other => Err(status_error(other, &body)),
        }
    }

    async fn groups_with_member(&self, user: &ScimUserId) -> Result<Option<Vec<ScimGroup>>, ScimError> {
        if self.group_filters.get() == Filtering::Untested {
            // A user id nobody has must match no group: a bridge that answers it with groups
            // ignores the filter, and its answers for real users would be every group.
            // With no group at all, an ignoring bridge answers nothing too: inconclusive, so
            // the filter is not used until a probe can tell.
            let verdict = match self.query_groups_with_member(&ScimUserId::new(PROBE_USER_ID)).await? {
                Some(groups) if groups.is_empty() => match self.any_group().await? {
                    true => Filtering::Trusted,
                    false => return Ok(None),
                },
                Some(_) => Filtering::Ignored,
                None => Filtering::Rejected,
            };
            if self.group_filters.learn(verdict) && verdict != Filtering::Trusted {
                tracing::warn!(?verdict, "the bridge does not answer the group member filter");
            }
        }
        match self.group_filters.get() {
            Filtering::Ignored | Filtering::Rejected => Ok(None),
            Filtering::Untested | Filtering::Trusted => self.query_groups_with_member(user).await,
        }
    }

    async fn create_group(&self, display_name: &str) -> Result<ScimGroup, ScimError> {
        let body = serde_json::json!({ "schemas": [GROUP_SCHEMA], "displayName": display_name });
        self.send_json(Method::POST, &["Groups"], &[], Some(&body), &[StatusCode::OK, StatusCode::CREATED]).await
    }

    async fn delete_group(&self, id: &ScimGroupId) -> Result<(), ScimError> {
        let (status, body) = self.send(Method::DELETE, &["Groups", id.as_str()], &[], None).await?;
        match status {
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            other => Err(status_error(other, &body)),
        }
    }

    /// The answer is not read, and with members it would grow with the group (RFC 7644
    /// §3.5.2 lets the client ask for less).
    async fn patch_group(&self, id: &ScimGroupId, operations: Vec<PatchOperation>) -> Result<(), ScimError> {
        self.patch(&["Groups", id.as_str()], &[("excludedAttributes", "members".to_owned())], operations).await
    }
}

impl ScimClient {
    async fn patch(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        operations: Vec<PatchOperation>,
    ) -> Result<(), ScimError> {
        let body = serde_json::to_value(PatchRequest::new(operations)).map_err(|e| ScimError::Decode(e.to_string()))?;
        let (status, response) = self.send(Method::PATCH, segments, query, Some(&body)).await?;
        match status {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            other => Err(status_error(other, &response)),
        }
    }
}

/// What a bridge answer means: 401 once → re-read the token (rotation); 429 and 5xx pass on
/// their own; everything else is the caller's to interpret.
fn classify(operation: &str, reply: Reply, attempt: Attempt) -> Verdict<(StatusCode, Vec<u8>), ScimError> {
    match reply.status {
        StatusCode::UNAUTHORIZED if !attempt.refreshed => {
            Verdict::RefreshAndRetry { problem: format!("{operation} answered 401") }
        }
        StatusCode::UNAUTHORIZED => Verdict::Fail(ScimError::Unauthorized),
        status if is_transient(status) => {
            let detail = parse_error(&reply.body).detail.unwrap_or_default();
            let problem = format!("{operation} answered {status} {detail}").trim().to_owned();
            Verdict::Retry { problem, retry_after: reply.retry_after }
        }
        status => Verdict::Done((status, reply.body)),
    }
}

fn parse_error(body: &[u8]) -> ScimErrorBody {
    serde_json::from_slice(body).unwrap_or_default()
}

fn status_error(status: StatusCode, body: &[u8]) -> ScimError {
    let parsed = parse_error(body);
    // The bridge's detail can echo the userName it refused; errors are logged.
    let detail = parsed.detail.map(|d| crate::telemetry::mask_emails_in(&d));
    ScimError::Status { status: status.as_u16(), scim_type: parsed.scim_type, detail }
}
