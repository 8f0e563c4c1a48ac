//! Reading the rate-limit fields servers send into one [`Feedback`].
//!
//! Every parser here is total: a value that does not parse, overflows or is absurd is ignored
//! (`None`), never a panic. The fields read:
//!
//! - `Retry-After` (RFC 9110 §10.2.3) and `retry-after-ms` (OpenAI, Anthropic), on 429 and 503;
//! - the IETF `RateLimit` and `RateLimit-Policy` fields (draft-ietf-httpapi-ratelimit-headers-09:
//!   `RateLimit: "default";r=50;t=30`, `RateLimit-Policy: "default";q=100;w=10`), and the
//!   older drafts' `RateLimit-Remaining` / `RateLimit-Reset`;
//! - OpenAI's `x-ratelimit-remaining-requests` / `x-ratelimit-reset-requests` (`6m0s`, `20ms`)
//!   and the `-tokens` pair;
//! - Anthropic's `anthropic-ratelimit-requests-remaining` / `-requests-reset` (RFC 3339) and the
//!   `tokens`, `input-tokens` and `output-tokens` pairs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ureq::http::{HeaderMap, StatusCode};

use crate::retry::{days_from_civil, parse_retry_after};

/// Longest value any parser looks at; longer ones are ignored.
const MAX_VALUE: usize = 256;

/// Most members of a structured list read from one field.
const MAX_MEMBERS: usize = 16;

/// Reads a reset field into the wait until the reset, from a given now.
type ResetParser = fn(&str, SystemTime) -> Option<Duration>;

/// What one response says about the pace to keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Feedback {
    /// Send nothing for this long (a `Retry-After`, or a quota with nothing left).
    pub(crate) block: Option<Duration>,
    /// Keep at least this far between requests, until `lapses` from now.
    pub(crate) spacing: Option<Spacing>,
}

/// A pace derived from a quota: `interval` between requests until the quota resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spacing {
    pub(crate) interval: Duration,
    pub(crate) lapses: Duration,
}

/// A quota as a server reports it: what is left, and when it resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quota {
    remaining: u64,
    reset: Duration,
    /// The steady pace the server's policy allows, when it declares one.
    policy_interval: Option<Duration>,
    /// A token quota: a request's cost in tokens is not known before it is sent, so only its
    /// exhaustion paces requests.
    tokens: bool,
}

impl Feedback {
    fn block_for(&mut self, wait: Duration) {
        self.block = Some(self.block.map_or(wait, |b| b.max(wait)));
    }

    /// Several quotas bind at once: the strictest one sets the pace.
    fn space(&mut self, s: Spacing) {
        match &mut self.spacing {
            Some(old) if old.interval >= s.interval => old.lapses = old.lapses.max(s.lapses),
            _ => self.spacing = Some(s),
        }
    }

    fn quota(&mut self, q: Quota) {
        if q.remaining == 0 {
            self.block_for(q.reset);
            return;
        }
        if q.tokens {
            return;
        }
        // Spread what is left over the time to reset. A declared policy pace is used instead
        // where there is one: the IETF reset counts whole seconds, and spreading over a
        // rounded-up reset would slow every window's end (exhaustion still blocks above).
        let interval = q
            .policy_interval
            .unwrap_or_else(|| div(q.reset, q.remaining));
        if !interval.is_zero() {
            self.space(Spacing {
                interval,
                lapses: q.reset,
            });
        }
    }
}

/// Everything `headers` says about pacing, for a response of `status` received at `now`.
pub(crate) fn feedback(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Feedback {
    let mut fb = Feedback::default();
    let limited =
        status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE;
    // Most responses carry no rate-limit field: one pass over the names instead of a dozen
    // lookups.
    if !limited && !headers.keys().any(|n| is_rate_limit_field(n.as_str())) {
        return fb;
    }
    if limited {
        if let Some(wait) = server_wait(headers, now) {
            fb.block_for(wait);
        }
    }
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= MAX_VALUE)
    };
    for q in ietf_quotas(headers) {
        fb.quota(q);
    }
    let pairs: [(&str, &str, ResetParser, bool); 6] = [
        (
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
            go_duration_at,
            false,
        ),
        (
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
            go_duration_at,
            true,
        ),
        (
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset",
            rfc3339_wait,
            false,
        ),
        (
            "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-reset",
            rfc3339_wait,
            true,
        ),
        (
            "anthropic-ratelimit-input-tokens-remaining",
            "anthropic-ratelimit-input-tokens-reset",
            rfc3339_wait,
            true,
        ),
        (
            "anthropic-ratelimit-output-tokens-remaining",
            "anthropic-ratelimit-output-tokens-reset",
            rfc3339_wait,
            true,
        ),
    ];
    for (remaining, reset, parse_reset, tokens) in pairs {
        let (Some(r), Some(t)) = (text(remaining), text(reset)) else {
            continue;
        };
        if let (Some(remaining), Some(reset)) = (integer(r), parse_reset(t, now)) {
            fb.quota(Quota {
                remaining,
                reset,
                policy_interval: None,
                tokens,
            });
        }
    }
    fb
}

/// Whether a (lowercase) field name is one of the rate-limit fields read here.
fn is_rate_limit_field(name: &str) -> bool {
    name.starts_with("ratelimit")
        || name.starts_with("x-ratelimit-")
        || name.starts_with("anthropic-ratelimit-")
}

/// The wait a 429 or 503 asks for: `retry-after-ms` when present and valid (it is the more
/// precise), else `Retry-After`.
pub(crate) fn server_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
    get("retry-after-ms")
        .and_then(parse_retry_after_ms)
        .or_else(|| get("retry-after").and_then(|v| parse_retry_after(v, now)))
}

/// `retry-after-ms`: a non-negative decimal number of milliseconds (`1500`, `20.5`).
pub(crate) fn parse_retry_after_ms(value: &str) -> Option<Duration> {
    let ms = decimal(value.trim_matches([' ', '\t']))?;
    Some(saturating_secs(ms / 1000.0))
}

/// A duration as Go prints one (OpenAI's reset fields): `6m0s`, `1h2m3.5s`, `20ms`, `0s`.
/// Units `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`; each number may have a fraction.
pub(crate) fn parse_go_duration(value: &str) -> Option<Duration> {
    let mut rest = value.trim_matches([' ', '\t']);
    if rest.is_empty() || rest.len() > 64 {
        return None;
    }
    let mut secs = 0.0_f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = decimal(&rest[..digits])?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        secs += number * scale;
    }
    Some(saturating_secs(secs))
}

fn go_duration_at(value: &str, _now: SystemTime) -> Option<Duration> {
    parse_go_duration(value)
}

/// The wait until an RFC 3339 timestamp (`2026-12-03T15:30:00Z`, `...T15:30:00.250+01:00`),
/// measured from `now`; a time already past is [`Duration::ZERO`].
pub(crate) fn rfc3339_wait(value: &str, now: SystemTime) -> Option<Duration> {
    let at = parse_rfc3339_nanos(value.trim_matches([' ', '\t']))?;
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).ok()?,
        Err(e) => -i128::try_from(e.duration().as_nanos()).ok()?,
    };
    let wait = u64::try_from((at - now).max(0)).unwrap_or(u64::MAX);
    Some(Duration::from_nanos(wait))
}

/// Nanoseconds since the Unix epoch of an RFC 3339 date-time.
fn parse_rfc3339_nanos(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > 40 || !s.is_ascii() {
        return None;
    }
    let field = |from: usize, len: usize| -> Option<u32> {
        let part = s.get(from..from + len)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let punctuation = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if punctuation.iter().any(|&(i, c)| b[i] != c) || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (field(0, 4)?, field(5, 2)?, field(8, 2)?);
    let (hour, minute, second) = (field(11, 2)?, field(14, 2)?, field(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos: i128 = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos =
            i128::from(fraction[..digits].parse::<u32>().ok()?) * 10_i128.pow(9 - digits as u32);
        rest = &fraction[digits..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = rest[1..3].parse().ok().filter(|h| *h < 24)?;
            let minutes: i64 = rest[4..6].parse().ok().filter(|m| *m < 60)?;
            if !rest[1..3]
                .bytes()
                .chain(rest[4..6].bytes())
                .all(|c| c.is_ascii_digit())
            {
                return None;
            }
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// The quotas of the IETF fields: each `RateLimit` member matched with its `RateLimit-Policy`
/// member by name, or the older drafts' `RateLimit-Remaining` and `RateLimit-Reset`.
fn ietf_quotas(headers: &HeaderMap) -> Vec<Quota> {
    let members = |name: &str| -> Vec<Member> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|v| v.len() <= MAX_VALUE)
            .flat_map(parse_list)
            .take(MAX_MEMBERS)
            .collect()
    };
    let policies = members("ratelimit-policy");
    let mut quotas: Vec<Quota> = members("ratelimit")
        .iter()
        .filter_map(|m| {
            let policy = policies.iter().find(|p| p.name == m.name);
            Some(Quota {
                remaining: m.param("r")?,
                reset: Duration::from_secs(m.param("t").unwrap_or(0)),
                policy_interval: policy.and_then(|p| {
                    let quota = p.param("q").filter(|q| *q > 0)?;
                    Some(div(Duration::from_secs(p.param("w")?), quota))
                }),
                tokens: false,
            })
        })
        .collect();
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let legacy = (text("ratelimit-remaining"), text("ratelimit-reset"));
    if let (Some(r), Some(t)) = legacy {
        if let (Some(remaining), Some(reset)) = (integer(r), integer(t)) {
            quotas.push(Quota {
                remaining,
                reset: Duration::from_secs(reset),
                policy_interval: None,
                tokens: false,
            });
        }
    }
    quotas
}

/// One member of a structured-field list: its name (a string or token) and integer parameters.
#[derive(Debug)]
struct Member<'a> {
    name: &'a str,
    params: Vec<(&'a str, Option<u64>)>,
}

impl Member<'_> {
    fn param(&self, key: &str) -> Option<u64> {
        self.params
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| *v)
    }
}

/// A structured-field list (RFC 8941) of items with parameters, read leniently: members whose
/// name is a string may hold commas; a parameter that is not a non-negative integer is `None`.
fn parse_list(value: &str) -> Vec<Member<'_>> {
    let mut out = Vec::new();
    let mut rest = value;
    while !rest.trim().is_empty() && out.len() < MAX_MEMBERS {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        let (name, after) = match rest.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => return out,
            },
            None => {
                let end = rest.find([';', ',']).unwrap_or(rest.len());
                (rest[..end].trim(), &rest[end..])
            }
        };
        let end = after.find(',').unwrap_or(after.len());
        let params = after[..end]
            .split(';')
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.trim(), integer(v)))
            })
            .collect();
        out.push(Member { name, params });
        rest = &after[end..];
    }
    out
}

/// A non-negative integer of ASCII digits (at most 19, so it fits `u64`).
fn integer(value: &str) -> Option<u64> {
    let v = value.trim_matches([' ', '\t']);
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// A non-negative decimal (`12`, `0.5`, `3.`): digits, at most one dot, at most 32 bytes.
fn decimal(value: &str) -> Option<f64> {
    let digits = value.bytes().filter(u8::is_ascii_digit).count();
    let dots = value.bytes().filter(|&b| b == b'.').count();
    if digits == 0 || dots > 1 || digits + dots != value.len() || value.len() > 32 {
        return None;
    }
    value.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Non-negative finite seconds as a `Duration`, [`Duration::MAX`] when too large for one.
fn saturating_secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// `d / n`, for `n > 0`.
fn div(d: Duration, n: u64) -> Duration {
    let nanos = d.as_nanos() / u128::from(n.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::http::HeaderValue;

    fn now() -> SystemTime {
        // 2026-12-03T15:00:00Z
        UNIX_EPOCH + Duration::from_secs(1_796_310_000)
    }

    fn map(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn go_durations_as_openai_sends_them() {
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            parse_go_duration("1h2m3.5s"),
            Some(Duration::from_millis(3_723_500))
        );
        assert_eq!(parse_go_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("1.5us"), Some(Duration::from_nanos(1500)));
    }

    #[test]
    fn hostile_go_durations_are_ignored() {
        for v in [
            "",
            "s",
            "10",
            "10x",
            "-5s",
            "1..2s",
            "1e9s",
            "NaNs",
            "infs",
            "5s5",
            "ms",
            "1m-1s",
            &"1h".repeat(40),
        ] {
            assert_eq!(parse_go_duration(v), None, "{v:?}");
        }
        // Too large for a Duration: saturates into a wait no call honours.
        assert_eq!(
            parse_go_duration("99999999999999999999999999999h"),
            Some(Duration::MAX)
        );
    }

    #[test]
    fn retry_after_ms_and_its_hostile_values() {
        assert_eq!(
            parse_retry_after_ms("1500"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after_ms(" 20.5 "),
            Some(Duration::from_micros(20_500))
        );
        for v in [
            "",
            "-1",
            "1e3",
            "abc",
            "1.2.3",
            "inf",
            "NaN",
            &"9".repeat(40),
        ] {
            assert_eq!(parse_retry_after_ms(v), None, "{v:?}");
        }
        // A huge but well-formed value saturates into a wait no call honours, never a panic.
        assert!(parse_retry_after_ms(&"9".repeat(30)).unwrap() > Duration::from_secs(1 << 40));
    }

    #[test]
    fn rfc3339_resets_as_anthropic_sends_them() {
        let n = now();
        assert_eq!(
            rfc3339_wait("2026-12-03T15:00:30Z", n),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            rfc3339_wait("2026-12-03T16:00:01.5+01:00", n),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            rfc3339_wait("2026-12-03T14:00:00Z", n),
            Some(Duration::ZERO)
        );
        for v in [
            "",
            "2026-12-03",
            "2026-13-03T15:00:00Z",
            "2026-12-03T25:00:00Z",
            "2026-12-03T15:00:00",
            "2026-12-03T15:00:00+1:00",
            "2026-12-03T15:00:00.Z",
            "2026-12-03T15:00:00.1234567890Z",
            "+026-12-03T15:00:00Z",
            "2026-12-03T15:00:00+99:99",
            "２026-12-03T15:00:00Z",
        ] {
            assert_eq!(rfc3339_wait(v, n), None, "{v:?}");
        }
    }

    #[test]
    fn ietf_fields_with_a_policy_pace_at_the_policy_rate() {
        let h = map(&[
            ("ratelimit-policy", r#""default";q=60;w=1"#),
            ("ratelimit", r#""default";r=30;t=1"#),
        ]);
        let fb = feedback(StatusCode::OK, &h, now());
        assert_eq!(fb.block, None);
        let s = fb.spacing.unwrap();
        assert_eq!(s.interval, Duration::from_secs(1) / 60);
        assert_eq!(s.lapses, Duration::from_secs(1));
    }

    #[test]
    fn ietf_fields_without_a_policy_spread_the_remainder() {
        let h = map(&[("ratelimit", r#"default;r=10;t=5, "other, one";r=50;t=10"#)]);
        let fb = feedback(StatusCode::OK, &h, now());
        assert_eq!(fb.spacing.unwrap().interval, Duration::from_millis(500));
        let exhausted = map(&[("ratelimit", r#""default";r=0;t=7"#)]);
        let fb = feedback(StatusCode::OK, &exhausted, now());
        assert_eq!(fb.block, Some(Duration::from_secs(7)));
        let legacy = map(&[("ratelimit-remaining", "4"), ("ratelimit-reset", "2")]);
        let fb = feedback(StatusCode::OK, &legacy, now());
        assert_eq!(fb.spacing.unwrap().interval, Duration::from_millis(500));
    }

    #[test]
    fn openai_and_anthropic_pairs() {
        let h = map(&[
            ("x-ratelimit-remaining-requests", "20"),
            ("x-ratelimit-reset-requests", "2s"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "1m0s"),
        ]);
        let fb = feedback(StatusCode::OK, &h, now());
        assert_eq!(fb.spacing.unwrap().interval, Duration::from_millis(100));
        assert_eq!(fb.block, Some(Duration::from_secs(60)));
        let a = map(&[
            ("anthropic-ratelimit-requests-remaining", "10"),
            ("anthropic-ratelimit-requests-reset", "2026-12-03T15:00:05Z"),
            ("anthropic-ratelimit-tokens-remaining", "5000"),
            ("anthropic-ratelimit-tokens-reset", "2026-12-03T15:00:50Z"),
        ]);
        let fb = feedback(StatusCode::OK, &a, now());
        assert_eq!(fb.spacing.unwrap().interval, Duration::from_millis(500));
        assert_eq!(fb.block, None, "tokens left pace nothing");
    }

    #[test]
    fn retry_after_blocks_only_on_429_and_503() {
        let h = map(&[("retry-after", "2"), ("retry-after-ms", "1250")]);
        let fb = feedback(StatusCode::TOO_MANY_REQUESTS, &h, now());
        assert_eq!(fb.block, Some(Duration::from_millis(1250)));
        let fb = feedback(
            StatusCode::SERVICE_UNAVAILABLE,
            &map(&[("retry-after", "2")]),
            now(),
        );
        assert_eq!(fb.block, Some(Duration::from_secs(2)));
        assert_eq!(feedback(StatusCode::OK, &h, now()).block, None);
        // An invalid retry-after-ms falls back to Retry-After.
        let h = map(&[("retry-after", "3"), ("retry-after-ms", "soon")]);
        assert_eq!(server_wait(&h, now()), Some(Duration::from_secs(3)));
    }

    #[test]
    fn hostile_rate_limit_fields_are_ignored() {
        let long = format!("\"d\";r=1;t={}", "9".repeat(300));
        let many = "a;r=1;t=1,".repeat(1000);
        for (name, value) in [
            ("ratelimit", r#""default";r=-1;t=5"#),
            ("ratelimit", r#""default";r=99999999999999999999;t=5"#),
            ("ratelimit", r#""unterminated;r=1;t=1"#),
            ("ratelimit", r#";;;,,,=;=="#),
            ("ratelimit", long.as_str()),
            ("ratelimit", many.as_str()),
            ("ratelimit-remaining", "lots"),
            ("x-ratelimit-remaining-requests", "1e3"),
            ("anthropic-ratelimit-requests-remaining", "-4"),
        ] {
            let mut h = map(&[(name, value)]);
            h.append("ratelimit-reset", HeaderValue::from_static("1"));
            h.append("x-ratelimit-reset-requests", HeaderValue::from_static("1s"));
            h.append(
                "anthropic-ratelimit-requests-reset",
                HeaderValue::from_static("2026-12-03T15:00:05Z"),
            );
            let fb = feedback(StatusCode::OK, &h, now());
            assert!(fb.block.is_none(), "{name}: {value:?} gave {fb:?}");
            // The many-member list is read up to its cap; an over-long value not at all.
            if value != many {
                assert!(fb.spacing.is_none(), "{name}: {value:?} gave {fb:?}");
            }
        }
        // The largest reset a field can name saturates, never overflows.
        let h = map(&[("ratelimit", &format!("d;r=1;t={}", u64::MAX / 10))]);
        assert!(feedback(StatusCode::OK, &h, now()).spacing.is_some());
        let h = map(&[("ratelimit", "d;r=0;t=9999999999999999999")]);
        assert!(feedback(StatusCode::OK, &h, now()).block.is_some());
    }
}
