//! [`StatusClass`]: the first digit of an HTTP status code, the key of the per-class counters.

use std::fmt;

use ureq::http::StatusCode;

/// The class of an HTTP status code, given by its first digit: `1xx` through `5xx`.
///
/// It keys the per-class counters: [`Stats::responses`](crate::Stats::responses) counts every
/// response received by class, [`Stats::calls_with_status`](crate::Stats::calls_with_status)
/// counts calls by the class of the response they ended with. It is also the `class` label of
/// the Prometheus families.
///
/// # Examples
///
/// ```
/// use http_sentinel::{Stats, metrics::StatusClass};
///
/// assert_eq!(StatusClass::ServerError.as_str(), "5xx");
/// assert_eq!(StatusClass::ALL.len(), 5);
///
/// let stats = Stats::default(); // normally `pool.stats()`
/// let answered_5xx = stats.calls_with_status(StatusClass::ServerError);
/// assert_eq!(answered_5xx, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusClass {
    /// `1xx`: informational.
    Informational,
    /// `2xx`: success.
    Success,
    /// `3xx`: redirection.
    Redirection,
    /// `4xx`: client error.
    ClientError,
    /// `5xx`: server error.
    ServerError,
}

impl StatusClass {
    /// Every class, in order from `1xx` to `5xx`.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::metrics::StatusClass;
    ///
    /// let labels: Vec<&str> = StatusClass::ALL.iter().map(|c| c.as_str()).collect();
    /// assert_eq!(labels, ["1xx", "2xx", "3xx", "4xx", "5xx"]);
    /// ```
    pub const ALL: &'static [StatusClass] = &[
        StatusClass::Informational,
        StatusClass::Success,
        StatusClass::Redirection,
        StatusClass::ClientError,
        StatusClass::ServerError,
    ];

    /// Number of classes, the length of per-class counter arrays.
    pub(crate) const COUNT: usize = Self::ALL.len();

    /// The class of `status`.
    ///
    /// HTTP defines the classes 1xx to 5xx only; a status of 600 to 999 (which the parser lets
    /// through) counts as [`ServerError`](Self::ServerError): the server misbehaved.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::metrics::StatusClass;
    /// use http_sentinel::http::StatusCode;
    ///
    /// let class = StatusClass::from_status(StatusCode::NOT_FOUND);
    /// assert_eq!(class, StatusClass::ClientError);
    /// assert_eq!(class.as_str(), "4xx");
    ///
    /// // A response of the crate's own `Response` gives its status as a number.
    /// let status = StatusCode::from_u16(503).expect("100..=999");
    /// assert_eq!(StatusClass::from_status(status), StatusClass::ServerError);
    /// ```
    pub fn from_status(status: StatusCode) -> StatusClass {
        match status.as_u16() / 100 {
            // `StatusCode` holds 100..=999, so nothing is below 1xx.
            0 | 1 => StatusClass::Informational,
            2 => StatusClass::Success,
            3 => StatusClass::Redirection,
            4 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }

    /// The label `1xx` ... `5xx`, as used in the Prometheus `class` label and the table.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::metrics::StatusClass;
    ///
    /// assert_eq!(StatusClass::Success.as_str(), "2xx");
    /// assert_eq!(StatusClass::ClientError.to_string(), "4xx");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
        }
    }

    /// Position in [`StatusClass::ALL`] and in per-class counter arrays.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for StatusClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_code_has_the_class_of_its_first_digit() {
        for code in 100..=999u16 {
            let class = StatusClass::from_status(StatusCode::from_u16(code).unwrap());
            let expected = usize::from(code / 100).min(5) - 1;
            assert_eq!(class.index(), expected, "{code}");
        }
    }

    #[test]
    fn classes_are_indexed_and_labelled_in_order() {
        assert_eq!(StatusClass::COUNT, 5);
        for (i, &class) in StatusClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i);
            assert_eq!(class.as_str(), format!("{}xx", i + 1));
            assert_eq!(class.to_string(), class.as_str());
        }
    }
}
