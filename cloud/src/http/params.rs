//! Query-string parsing whose errors name the parameter at fault.
//!
//! axum's `Query` rejection is plain text and often does not say which
//! parameter was wrong; operators integrating with the API need to know.

use super::problem::AppError;
use std::collections::HashMap;
use std::str::FromStr;

/// Default and largest page size of every list endpoint.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 10_000;

#[derive(Debug)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Accepts only the `allowed` parameter names.
    pub fn new(raw: HashMap<String, String>, allowed: &[&str]) -> Result<Self, AppError> {
        if let Some(bad) = raw.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(AppError::bad_field(
                bad.clone(),
                format!("unknown query parameter; allowed: {}", allowed.join(", ")),
            ));
        }
        Ok(Params(raw))
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn parse<T: FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, AppError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| AppError::bad_field(name, format!("{v:?} is not {what}"))),
        }
    }

    /// `limit` and `offset`, validated.
    pub fn page(&self) -> Result<(i64, i64), AppError> {
        let limit = self
            .parse::<i64>("limit", "an integer")?
            .unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AppError::bad_field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let offset = self.parse::<i64>("offset", "an integer")?.unwrap_or(0);
        if offset < 0 {
            return Err(AppError::bad_field("offset", "must not be negative"));
        }
        Ok((limit, offset))
    }
}
