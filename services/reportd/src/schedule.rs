//! When reports are written, and where: `<reports_dir>/reports/daily/
//! 2026-11-24.{html,json}` and `<reports_dir>/reports/weekly/2026-W48.{html,json}`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::info;
use vigil_reports::{Period, PeriodKind, ReadOnly};

use crate::{Paths, REPORT_EVERY, ReportdError, io};

/// The report schedule: the current periods every [`REPORT_EVERY`], each
/// finished period once.
#[derive(Debug)]
pub struct Schedule {
    paths: Paths,
    cameras: Vec<String>,
    last_current: Option<Instant>,
    /// Labels of finished periods already written since start.
    finished: HashSet<(PeriodKind, String)>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Writes `contents` to `path` through a temporary file and a rename, so a
/// reader never sees half a report.
fn write_atomically(path: &Path, contents: &str) -> Result<(), ReportdError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename", &tmp))
}

impl Schedule {
    pub fn new(paths: Paths, cameras: Vec<String>) -> Schedule {
        Schedule {
            paths,
            cameras,
            last_current: None,
            finished: HashSet::new(),
        }
    }

    /// Writes what is due.
    pub async fn tick(&mut self, database: &Path) -> Result<(), ReportdError> {
        let current_due = self
            .last_current
            .is_none_or(|t| t.elapsed() >= REPORT_EVERY);
        let mut due = Vec::new();
        for kind in [PeriodKind::Daily, PeriodKind::Weekly] {
            let current = Period::current(kind);
            let previous = current.previous();
            if !self.finished.contains(&(kind, previous.label.clone())) {
                due.push(previous);
            }
            if current_due {
                due.push(current);
            }
        }
        if due.is_empty() {
            return Ok(());
        }
        let mut db = ReadOnly::open(database).await?;
        let now = now_ms();
        for period in due {
            let path = self.write(&mut db, &period, now).await?;
            if period.to_unix_ms <= now {
                self.finished.insert((period.kind, period.label.clone()));
                info!(report = %path.display(), "wrote the {} report", period.kind.as_str());
            }
        }
        if current_due {
            self.last_current = Some(Instant::now());
        }
        Ok(())
    }

    /// Writes one period's report as JSON and HTML; returns the HTML path.
    pub async fn write(
        &self,
        db: &mut ReadOnly,
        period: &Period,
        now: i64,
    ) -> Result<PathBuf, ReportdError> {
        let report = db.report(period, &self.cameras, now).await?;
        let dir = self.paths.reports.join(period.kind.as_str());
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let json = serde_json::to_string_pretty(&report).map_err(|e| ReportdError::Io {
            what: "encode",
            path: dir.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomically(&dir.join(format!("{}.json", period.label)), &json)?;
        let html_path = dir.join(format!("{}.html", period.label));
        write_atomically(&html_path, &vigil_reports::html(&report))?;
        Ok(html_path)
    }
}
