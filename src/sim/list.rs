//! List requests: query parsing with Stripe's validation errors, cursor and window
//! selection over the index space, and the list envelope.

use super::billing::STATUS_FILTERS;
use super::Simulator;
use crate::Resource;

/// A `created` filter as a half-open range `[gte, lt)`; `created=<t>`, `created[gt]` and
/// `created[lte]` are normalised into it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreatedFilter {
    /// Inclusive lower bound.
    pub gte: Option<i64>,
    /// Exclusive upper bound.
    pub lt: Option<i64>,
}

impl CreatedFilter {
    fn raise(&mut self, gte: i64) {
        self.gte = Some(self.gte.map_or(gte, |g| g.max(gte)));
    }

    fn lower(&mut self, lt: i64) {
        self.lt = Some(self.lt.map_or(lt, |l| l.min(lt)));
    }
}

/// The parameters of one list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    /// Page size, 1–100.
    pub limit: u32,
    /// Return objects older than this id.
    pub starting_after: Option<String>,
    /// Return objects newer than this id (still newest first).
    pub ending_before: Option<String>,
    /// The `created` window.
    pub created: CreatedFilter,
    /// Subscriptions only: `all`, one status, `ended`; `None` omits canceled ones.
    pub status: Option<String>,
}

impl Default for ListParams {
    fn default() -> Self {
        ListParams {
            limit: 10,
            starting_after: None,
            ending_before: None,
            created: CreatedFilter::default(),
            status: None,
        }
    }
}

/// A list request Stripe would reject with `400 invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// A parameter that must be an integer is not.
    #[error("Invalid integer: {value}")]
    InvalidInteger {
        /// The parameter, e.g. `limit` or `created[gte]`.
        param: String,
        /// The value received.
        value: String,
    },
    /// `limit` below 1.
    #[error("This value must be greater than or equal to 1.")]
    LimitTooSmall,
    /// `limit` above 100.
    #[error("This value must be less than or equal to 100.")]
    LimitTooLarge,
    /// A cursor id that names no object of the resource.
    #[error("No such {object}: '{id}'")]
    NoSuchObject {
        /// The resource's object name (`charge`, …).
        object: &'static str,
        /// The id received.
        id: String,
        /// `starting_after` or `ending_before`.
        param: &'static str,
    },
    /// Both cursors at once.
    #[error("You may only specify one of these parameters: ending_before, starting_after.")]
    BothCursors,
    /// A parameter the endpoint (or the simulator) does not know.
    #[error("Received unknown parameter: {0}")]
    UnknownParameter(String),
    /// A subscription `status` outside Stripe's list.
    #[error("Invalid status: must be one of active, all, canceled, ended, incomplete, incomplete_expired, past_due, paused, trialing, or unpaid")]
    InvalidStatus,
}

impl ListError {
    /// The `param` of Stripe's error body.
    pub fn param(&self) -> Option<&str> {
        match self {
            ListError::InvalidInteger { param, .. } => Some(param),
            ListError::LimitTooSmall | ListError::LimitTooLarge => Some("limit"),
            ListError::NoSuchObject { param, .. } => Some(param),
            ListError::BothCursors => Some("ending_before"),
            ListError::UnknownParameter(p) => Some(p),
            ListError::InvalidStatus => Some("status"),
        }
    }

    /// The `code` of Stripe's error body.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            ListError::InvalidInteger { .. }
            | ListError::LimitTooSmall
            | ListError::LimitTooLarge => Some("parameter_invalid_integer"),
            ListError::NoSuchObject { .. } => Some("resource_missing"),
            ListError::UnknownParameter(_) => Some("parameter_unknown"),
            ListError::BothCursors | ListError::InvalidStatus => None,
        }
    }
}

/// Decodes one `application/x-www-form-urlencoded` component.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn integer(param: &str, value: &str) -> Result<i64, ListError> {
    value.parse().map_err(|_| ListError::InvalidInteger {
        param: param.to_string(),
        value: value.to_string(),
    })
}

impl ListParams {
    /// Parses and validates a list request's query string for resource `r`.
    pub fn parse(r: Resource, query: &str) -> Result<Self, ListError> {
        let mut p = ListParams::default();
        for pair in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (percent_decode(k), percent_decode(v));
            match k.as_str() {
                "limit" => {
                    let n = integer("limit", &v)?;
                    p.limit = match n {
                        ..=0 => return Err(ListError::LimitTooSmall),
                        101.. => return Err(ListError::LimitTooLarge),
                        n => n as u32,
                    };
                }
                "starting_after" => p.starting_after = Some(v),
                "ending_before" => p.ending_before = Some(v),
                "created" => {
                    let t = integer(&k, &v)?;
                    p.created.raise(t);
                    p.created.lower(t.saturating_add(1));
                }
                "created[gte]" => p.created.raise(integer(&k, &v)?),
                "created[gt]" => p.created.raise(integer(&k, &v)?.saturating_add(1)),
                "created[lt]" => p.created.lower(integer(&k, &v)?),
                "created[lte]" => p.created.lower(integer(&k, &v)?.saturating_add(1)),
                "status" if r == Resource::Subscriptions => {
                    if !STATUS_FILTERS.contains(&v.as_str()) {
                        return Err(ListError::InvalidStatus);
                    }
                    p.status = Some(v);
                }
                k if k == "expand" || k.starts_with("expand[") => {}
                _ => return Err(ListError::UnknownParameter(k)),
            }
        }
        if p.starting_after.is_some() && p.ending_before.is_some() {
            return Err(ListError::BothCursors);
        }
        Ok(p)
    }
}

impl Simulator {
    /// Whether a list with `status` (subscriptions only) includes object `i`.
    fn listed(&self, r: Resource, status: Option<&str>, i: u64) -> bool {
        if self.hidden(r, i) {
            return false;
        }
        if r != Resource::Subscriptions {
            return true;
        }
        let s = if self.canceled_by_change(i) {
            "canceled"
        } else {
            self.subscription_status(i)
        };
        match status {
            None => s != "canceled",
            Some("all") => true,
            Some("ended") => s == "canceled" || s == "incomplete_expired",
            Some(want) => s == want,
        }
    }

    fn cursor(&self, r: Resource, id: &str, param: &'static str) -> Result<u64, ListError> {
        self.index_of(r, id)
            .filter(|&i| !self.is_deleted(r, i))
            .ok_or_else(|| ListError::NoSuchObject {
                object: r.object_name(),
                id: id.to_string(),
                param,
            })
    }

    /// The indices one list request returns, newest first, and `has_more`.
    pub fn select(&self, r: Resource, p: &ListParams) -> Result<(Vec<u64>, bool), ListError> {
        let w = self.timelines[r as usize].window(p.created.gte, p.created.lt);
        let limit = p.limit as usize;
        let status = p.status.as_deref();
        if let Some(id) = &p.ending_before {
            let k = self.cursor(r, id, "ending_before")?;
            let from = w.start.max(k.saturating_add(1));
            let mut it = (from..w.end.max(from)).filter(|&i| self.listed(r, status, i));
            let mut page: Vec<u64> = it.by_ref().take(limit).collect();
            let has_more = it.next().is_some();
            page.reverse();
            return Ok((page, has_more));
        }
        let top = match &p.starting_after {
            Some(id) => w.end.min(self.cursor(r, id, "starting_after")?),
            None => w.end,
        };
        let mut it = (w.start..top.max(w.start))
            .rev()
            .filter(|&i| self.listed(r, status, i));
        let page: Vec<u64> = it.by_ref().take(limit).collect();
        let has_more = it.next().is_some();
        Ok((page, has_more))
    }

    /// Appends the list envelope for one request to `buf`; returns how many objects it holds.
    pub fn write_page(
        &self,
        r: Resource,
        p: &ListParams,
        livemode: bool,
        buf: &mut Vec<u8>,
    ) -> Result<usize, ListError> {
        let (page, has_more) = self.select(r, p)?;
        self.delete_listed(r, &page);
        buf.reserve(page.len() * 2600 + 96);
        buf.extend_from_slice(b"{\"object\":\"list\",\"data\":[");
        for (n, &i) in page.iter().enumerate() {
            if n > 0 {
                buf.push(b',');
            }
            self.write_object(r, i, livemode, buf);
        }
        buf.extend_from_slice(if has_more {
            &b"],\"has_more\":true,\"url\":\"/v1/"[..]
        } else {
            b"],\"has_more\":false,\"url\":\"/v1/"
        });
        buf.extend_from_slice(r.path().as_bytes());
        buf.extend_from_slice(b"\"}");
        Ok(page.len())
    }

    /// One list response body as a test-mode key sees it (handy for benchmarks).
    pub fn page_json(&self, r: Resource, p: &ListParams) -> Result<Vec<u8>, ListError> {
        let mut buf = Vec::new();
        self.write_page(r, p, false, &mut buf)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stripe_style_queries() {
        let p = ListParams::parse(
            Resource::Charges,
            "limit=100&created%5Bgte%5D=10&created[lt]=20&created[gt]=12&expand[]=data.customer",
        )
        .unwrap();
        assert_eq!(p.limit, 100);
        assert_eq!(
            p.created,
            CreatedFilter {
                gte: Some(13),
                lt: Some(20)
            }
        );
        assert_eq!(
            ListParams::parse(Resource::Charges, "limit=0"),
            Err(ListError::LimitTooSmall)
        );
        assert_eq!(
            ListParams::parse(Resource::Charges, "status=all"),
            Err(ListError::UnknownParameter("status".into()))
        );
        assert!(ListParams::parse(Resource::Subscriptions, "status=all").is_ok());
        assert_eq!(percent_decode("a%20b+c%"), "a b c%");
    }
}
