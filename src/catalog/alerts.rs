//! Alert deliveries: which run notification went where, how many attempts it took, and
//! whether it arrived.

use serde::Serialize;

use super::{Catalog, CatalogError, SqlContext};

/// A run notification kind (Platform's alert rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Sources Flow Run Start.
    RunStart,
    /// Sources Flow Run Success.
    RunSuccess,
    /// Sources Flow Run Failure.
    RunFailure,
}

impl AlertKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::RunStart => "run_start",
            AlertKind::RunSuccess => "run_success",
            AlertKind::RunFailure => "run_failure",
        }
    }
}

/// One delivery attempt series of an alert to one target (webhook URL or command).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertDelivery {
    /// Id (0 before it is recorded).
    pub id: i64,
    /// The run.
    pub run_id: i64,
    /// The kind.
    pub kind: AlertKind,
    /// Where it went (`https://…` or `cmd: …`).
    pub target: String,
    /// Attempts made.
    pub attempts: u32,
    /// Whether it was delivered.
    pub ok: bool,
    /// Unix seconds of the last attempt.
    pub delivered_at: i64,
    /// The JSON sent.
    pub payload: String,
    /// The last error, when not delivered.
    pub error: Option<String>,
}

impl Catalog {
    /// Records an alert delivery; returns its id.
    pub fn record_alert(&mut self, d: &AlertDelivery) -> Result<i64, CatalogError> {
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO alert_deliveries (run_id, kind, target, attempts, ok, delivered_at, payload, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![d.run_id, d.kind.as_str(), d.target, d.attempts, d.ok, d.delivered_at, d.payload, d.error],
        )
        .ctx(format!("record a {} alert of run {}", d.kind.as_str(), d.run_id))?;
        let id = tx.last_insert_rowid();
        tx.commit().ctx("commit the alert record")?;
        Ok(id)
    }

    /// The alert deliveries of a run, oldest first.
    pub fn alert_deliveries(&self, run_id: i64) -> Result<Vec<AlertDelivery>, CatalogError> {
        let ctx = format!("list the alerts of run {run_id}");
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, run_id, kind, target, attempts, ok, delivered_at, payload, error
                 FROM alert_deliveries WHERE run_id = ?1 ORDER BY id",
            )
            .ctx(ctx.clone())?;
        let rows = stmt
            .query_map([run_id], |r| {
                let kind: String = r.get(2)?;
                let kind = match kind.as_str() {
                    "run_start" => AlertKind::RunStart,
                    "run_success" => AlertKind::RunSuccess,
                    _ => AlertKind::RunFailure,
                };
                Ok(AlertDelivery {
                    id: r.get(0)?,
                    run_id: r.get(1)?,
                    kind,
                    target: r.get(3)?,
                    attempts: r.get(4)?,
                    ok: r.get(5)?,
                    delivered_at: r.get(6)?,
                    payload: r.get(7)?,
                    error: r.get(8)?,
                })
            })
            .ctx(ctx.clone())?;
        rows.collect::<Result<_, _>>().ctx(ctx)
    }
}
