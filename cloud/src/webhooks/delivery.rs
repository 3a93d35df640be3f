//! The delivery task: POSTs due deliveries from the outbox, signed; retries
//! with exponential backoff and jitter; dead-letters after the last
//! attempt (docs/specs/webhooks.md).

use super::{Secret, signature};
use crate::db::{Caches, Db};
use crate::gateways::now_ms;
use crate::{on_db, on_tx};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How deliveries are attempted.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Attempts in all, the first included; then the delivery is dead.
    pub max_attempts: i64,
    /// Delay before the 2nd attempt; doubled for each further one.
    pub base_backoff: Duration,
    /// Largest delay between attempts.
    pub max_backoff: Duration,
    /// How often the outbox is polled.
    pub poll: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// A claimed delivery is not retried by another worker for this long.
    pub lease: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_attempts: 8,
            base_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(3600),
            poll: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(60),
        }
    }
}

impl Settings {
    /// The delay after failed attempt number `attempts` (1-based):
    /// `min(max, base · 2^(attempts-1))`, jittered uniformly in [½, 1]×.
    pub fn backoff(&self, attempts: i64) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let d = self
            .base_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.max_backoff);
        d.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }
}

/// Errors of one pass.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
}

/// id, subscription_id, event, body, attempts, next_attempt_ms, url, secret.
type Due = (i64, i64, String, String, i64, i64, String, String);

/// One pass: claims the due deliveries (up to 100) and attempts each once.
/// Returns how many were attempted.
pub async fn deliver_due(
    db: &Db,
    caches: &Caches,
    client: &reqwest::Client,
    s: &Settings,
) -> Result<usize, DeliveryError> {
    let now = now_ms();
    let due: Vec<Due> = on_db!(db, p => sqlx::query_as(
        "SELECT d.id, d.subscription_id, d.event, d.body, d.attempts, d.next_attempt_ms, w.url, w.secret \
         FROM webhook_deliveries d JOIN webhook_subscriptions w ON w.id = d.subscription_id \
         WHERE d.status = 'pending' AND d.next_attempt_ms <= $1 AND w.active ORDER BY d.id LIMIT 100")
        .bind(now).fetch_all(p).await)?;
    let mut n = 0;
    for (id, _sub, event, body, attempts, next, url, secret) in due {
        // Claim: push next_attempt_ms past the lease, only if nobody else did.
        let lease_until = now.saturating_add(i64::try_from(s.lease.as_millis()).unwrap_or(60_000));
        let mut tx = db.write(caches).await?;
        let claimed = on_tx!(tx, c => sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_ms = $1 WHERE id = $2 AND status = 'pending' AND next_attempt_ms = $3")
            .bind(lease_until).bind(id).bind(next).execute(c).await.map(|r| r.rows_affected()))?;
        tx.commit().await?;
        if claimed != 1 {
            continue;
        }
        let secret = Secret(secret);
        let outcome = attempt(client, s, &url, &secret, &event, id, &body).await;
        let attempts = attempts + 1;
        let at = now_ms();
        let mut tx = db.write(caches).await?;
        match outcome {
            Ok(()) => {
                on_tx!(tx, c => sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'delivered', attempts = $1, last_status = 200, last_error = NULL, delivered_ms = $2 WHERE id = $3")
                    .bind(attempts).bind(at).bind(id).execute(c).await.map(|_| ()))?;
            }
            Err((code, err)) => {
                let dead = attempts >= s.max_attempts;
                let next = at.saturating_add(
                    i64::try_from(s.backoff(attempts).as_millis()).unwrap_or(i64::MAX / 4),
                );
                if dead {
                    tracing::warn!(delivery = id, %event, attempts, error = %err, "webhook delivery dead-lettered");
                }
                on_tx!(tx, c => sqlx::query(
                    "UPDATE webhook_deliveries SET status = $1, attempts = $2, last_status = $3, last_error = $4, next_attempt_ms = $5 WHERE id = $6")
                    .bind(if dead { "dead" } else { "pending" }).bind(attempts).bind(code).bind(&err).bind(next).bind(id)
                    .execute(c).await.map(|_| ()))?;
            }
        }
        tx.commit().await?;
        n += 1;
    }
    Ok(n)
}

/// One POST; `Err((http status if any, what went wrong))` unless 2xx.
async fn attempt(
    client: &reqwest::Client,
    s: &Settings,
    url: &str,
    secret: &Secret,
    event: &str,
    id: i64,
    body: &str,
) -> Result<(), (Option<i64>, String)> {
    let res = client
        .post(url)
        .timeout(s.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Dcmms-Event", event)
        .header("X-Dcmms-Delivery", id.to_string())
        .header(
            "X-Dcmms-Signature",
            signature(secret.expose(), body.as_bytes()),
        )
        .body(body.to_string())
        .send()
        .await;
    match res {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err((
            Some(i64::from(r.status().as_u16())),
            format!("HTTP {}", r.status()),
        )),
        // Without the URL: it may carry credentials in its query.
        Err(e) => Err((None, e.without_url().to_string())),
    }
}

/// Runs [`deliver_due`] every `settings.poll` until `shutdown`.
pub fn spawn(
    db: Db,
    caches: Arc<Caches>,
    settings: Settings,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %DeliveryError::Client(e), "webhook delivery disabled");
                return;
            }
        };
        let mut tick = tokio::time::interval(settings.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                res = deliver_due(&db, &caches, &client, &settings) => {
                    if let Err(e) = res {
                        tracing::warn!(error = %e, "webhook delivery pass failed; retrying at the next pass");
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let s = Settings {
            base_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
            ..Settings::default()
        };
        for _ in 0..50 {
            let b1 = s.backoff(1);
            assert!(b1 >= Duration::from_secs(5) && b1 <= Duration::from_secs(10));
            let b2 = s.backoff(2);
            assert!(b2 >= Duration::from_secs(10) && b2 <= Duration::from_secs(20));
            let b9 = s.backoff(9);
            assert!(b9 >= Duration::from_secs(30) && b9 <= Duration::from_secs(60));
        }
    }
}
