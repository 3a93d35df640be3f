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

    /// `sort=field` or `sort=-field` (descending) among `allowed`; returns
    /// the field as listed in `allowed` (safe to put in SQL) and whether
    /// descending.
    pub fn sort(
        &self,
        allowed: &[&'static str],
        default: (&'static str, bool),
    ) -> Result<(&'static str, bool), AppError> {
        let Some(v) = self.str("sort") else {
            return Ok(default);
        };
        let (name, desc) = match v.strip_prefix('-') {
            Some(n) => (n, true),
            None => (v, false),
        };
        allowed
            .iter()
            .find(|a| **a == name)
            .map(|a| (*a, desc))
            .ok_or_else(|| {
                AppError::bad_field(
                    "sort",
                    format!(
                        "{v:?}: sort by one of {} (prefix - for descending)",
                        allowed.join(", ")
                    ),
                )
            })
    }
}

/// A value bound to a dynamically built query (filters).
#[derive(Debug, Clone)]
pub enum Bind {
    Int(i64),
    Text(String),
}

/// `WHERE` clauses with `$n` placeholders and their values, built up from
/// optional filters; one text serves both databases.
#[derive(Debug, Default)]
pub struct Filters {
    pub clauses: Vec<String>,
    pub binds: Vec<Bind>,
}

impl Filters {
    /// Adds `column = $n` for a present value.
    pub fn eq(&mut self, column: &str, value: Option<Bind>) {
        if let Some(v) = value {
            self.binds.push(v);
            self.clauses
                .push(format!("{column} = ${}", self.binds.len()));
        }
    }

    /// ` WHERE a = $1 AND b = $2`, or nothing.
    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// The next placeholder number (for LIMIT/OFFSET after the filters).
    pub fn next(&self) -> usize {
        self.binds.len() + 1
    }
}

/// Binds `binds` in order onto a query of either database.
#[macro_export]
macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                $crate::http::params::Bind::Int(v) => q.bind(*v),
                $crate::http::params::Bind::Text(v) => q.bind(v.clone()),
            };
        }
        q
    }};
}
