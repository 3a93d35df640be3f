//! Helpers for tests that need a real database (used by this crate's tests
//! and by the end-to-end tests in `tests/`).

use crate::db::Db;

/// Environment variable naming the Postgres server used by the Postgres suites.
pub const PG_ENV: &str = "DCMMS_TEST_DATABASE_URL";
/// Used when [`PG_ENV`] is unset: the local server CI starts.
pub const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Creates a fresh, uniquely named Postgres database and returns its URL.
///
/// Fails loudly when the server cannot be reached: a Postgres suite that was
/// asked for must never pass by skipping.
pub async fn fresh_postgres_database() -> Result<String, String> {
    let admin_url = std::env::var(PG_ENV).unwrap_or_else(|_| PG_DEFAULT.to_string());
    let name = format!(
        "dcmms_test_{}_{:x}",
        std::process::id(),
        rand::random::<u64>()
    );
    let admin = sqlx::PgPool::connect(&admin_url).await.map_err(|e| {
        format!(
            "Postgres suite: cannot connect to {} ({e}); set {PG_ENV} or start Postgres",
            crate::db::redact_url(&admin_url)
        )
    })?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .map_err(|e| format!("cannot create test database {name}: {e}"))?;
    admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

/// A SQLite URL for a file in `dir`.
pub fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("cloud.sqlite").display())
}

/// Counts rows in `samples`, for exactly-once assertions.
pub async fn count_samples(db: &Db) -> Result<i64, sqlx::Error> {
    use sqlx::Row;
    crate::on_db!(db, p => sqlx::query("SELECT COUNT(*) FROM samples").fetch_one(p).await?.try_get(0))
}

/// A new active user of `role` (random name and password) and an API
/// token for them: the one way test harnesses, the demo's checks and the
/// benchmarks get a bearer token for the user-facing API. It writes
/// through the store (with the audit record), so pass the `caches` of the
/// server using `db` (for SQLite, they hold its writer queue).
pub async fn api_token(
    db: &Db,
    caches: &crate::db::Caches,
    role: crate::auth::Role,
) -> Result<String, crate::auth::users::UserError> {
    use crate::auth::users;
    let tag = format!("{:016x}", rand::random::<u64>());
    let username = format!("test-{}-{tag}", role.as_str().replace('_', "-"));
    let password = format!("pw-{tag}-{:016x}", rand::random::<u64>());
    let user = users::create(
        db,
        caches,
        "system:test",
        &username,
        &username,
        role,
        &password,
    )
    .await?;
    Ok(users::issue_token(db, caches, user.id, "api", "test harness", None).await?)
}
