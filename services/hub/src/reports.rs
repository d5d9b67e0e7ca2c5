//! ReportService (`proto/vigil/v1/reports.proto`): reports and the event
//! history, from reportd's SQLite index, which the hub only ever opens
//! read-only (a fresh connection per request, so that a rebuilt file is
//! seen at once).

use tonic::{Request, Response, Status};
use vigil_domain::{EventKind, Role};
use vigil_proto::v1 as pb;
use vigil_proto::v1::report_service_server::ReportService;
use vigil_reports::{Cursor, EventFilter, Order, Period, PeriodKind, ReadOnly, ReportsError};

use crate::clock::now_ms;
use crate::convert::to_pb_event;
use crate::grpc::{Api, RpcResult};

/// The page size when a request gives none.
const DEFAULT_PAGE: u32 = 100;

/// Between a page token's cursor and the digest of the filters it was
/// given for.
const TOKEN_BINDING: char = '/';

/// A short digest of everything in a query but its page (token and size,
/// which may change from page to page): a page token carries it, so a
/// token cannot be replayed with other filters (which would skip or
/// repeat events without a word).
fn filters_digest(req: &pb::QueryEventsRequest) -> String {
    let canonical = format!(
        "{}\0{}\0{}\0{}\0{}\0{}\0{}",
        req.from_unix_ms,
        req.to_unix_ms,
        req.kinds.join("\x01"),
        req.sensor,
        req.user,
        req.newest_first,
        req.after_seq
    );
    let mut digest = crate::pki::sha256_hex(canonical.as_bytes());
    digest.truncate(12);
    digest
}

/// The cursor of a page token given for the filters with digest
/// `bound_to`; INVALID_ARGUMENT for anything else.
fn page_cursor(token: &str, bound_to: &str) -> Result<Cursor, Status> {
    let shown = vigil_domain::text::excerpt(token);
    let (cursor, digest) = token.rsplit_once(TOKEN_BINDING).ok_or_else(|| {
        Status::invalid_argument(format!(
            "page_token {shown} is not one this server gave: start without one"
        ))
    })?;
    let cursor = Cursor::from_token(cursor).ok_or_else(|| {
        Status::invalid_argument(format!(
            "page_token {shown} is not one this server gave: start without one"
        ))
    })?;
    if digest != bound_to {
        return Err(Status::invalid_argument(
            "page_token was given for other filters: ask again with the filters of the first \
             page, or start without a token",
        ));
    }
    Ok(cursor)
}

fn to_status(e: ReportsError) -> Status {
    match e {
        ReportsError::BadPeriod(m) => Status::invalid_argument(m),
        ReportsError::Open { path, source } => {
            // The operator's log has the path; a guest gets its name only.
            tracing::warn!(path = %path.display(), "the reports index cannot be opened: {source}");
            Status::unavailable(format!(
                "the reports index ({}) cannot be opened: is vigil-reportd running? It creates \
                 the file when it starts",
                path.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            ))
        }
        other => Status::unavailable(format!("the reports index: {other}")),
    }
}

impl Api {
    async fn open_index(&self) -> Result<(ReadOnly, Vec<String>), Status> {
        let (path, cameras) = {
            let view = self.view.borrow();
            (view.reports_db.clone(), view.cameras.clone())
        };
        let path = path.ok_or_else(|| Status::unavailable("this server keeps no reports"))?;
        let db = ReadOnly::open(&path).await.map_err(to_status)?;
        Ok((db, cameras))
    }
}

#[tonic::async_trait]
impl ReportService for Api {
    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> RpcResult<pb::GetReportResponse> {
        let req = self.message_for(request, Role::Guest)?;
        let kind = match pb::ReportPeriod::try_from(req.period) {
            Ok(pb::ReportPeriod::Unspecified | pb::ReportPeriod::Daily) => PeriodKind::Daily,
            Ok(pb::ReportPeriod::Weekly) => PeriodKind::Weekly,
            Err(_) => return Err(Status::invalid_argument("unknown report period")),
        };
        let html = match pb::ReportFormat::try_from(req.format) {
            Ok(pb::ReportFormat::Unspecified | pb::ReportFormat::Json) => false,
            Ok(pb::ReportFormat::Html) => true,
            Err(_) => return Err(Status::invalid_argument("unknown report format")),
        };
        let period = Period::parse(kind, &req.date).map_err(to_status)?;
        let (mut db, cameras) = self.open_index().await?;
        let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
        let report = db.report(&period, &cameras, now).await.map_err(to_status)?;
        let (content_type, body) = if html {
            ("text/html; charset=utf-8", vigil_reports::html(&report))
        } else {
            (
                "application/json",
                serde_json::to_string_pretty(&report)
                    .map_err(|e| Status::internal(format!("encoding the report: {e}")))?,
            )
        };
        Ok(Response::new(pb::GetReportResponse {
            label: report.label.clone(),
            from_unix_ms: report.from_unix_ms,
            to_unix_ms: report.to_unix_ms,
            content_type: content_type.into(),
            body: body.into_bytes(),
            indexed_through_seq: report.indexed_through_seq,
        }))
    }

    async fn query_events(
        &self,
        request: Request<pb::QueryEventsRequest>,
    ) -> RpcResult<pb::QueryEventsResponse> {
        let req = self.message_for(request, Role::Guest)?;
        let limit = match req.page_size {
            0 => DEFAULT_PAGE,
            n if n <= vigil_reports::MAX_PAGE => n,
            n => {
                return Err(Status::invalid_argument(format!(
                    "page_size {n} is over the limit of {}",
                    vigil_reports::MAX_PAGE
                )));
            }
        };
        let last = self.engine.status().last_seq;
        if req.after_seq > last {
            return Err(crate::commands::CommandError::ResumeBeyondLast { last }.into());
        }
        let bound_to = filters_digest(&req);
        let cursor = match req.page_token.as_str() {
            "" => None,
            token => Some(page_cursor(token, &bound_to)?),
        };
        let nonzero = |t: i64| (t != 0).then_some(t);
        let filter = EventFilter {
            from_unix_ms: nonzero(req.from_unix_ms),
            to_unix_ms: nonzero(req.to_unix_ms),
            // A kind this build does not know is asked for by its name.
            kinds: req.kinds.iter().map(|k| EventKind::from_name(k)).collect(),
            // The request's `sensor` names a sensor or a camera.
            sensor_or_camera: (!req.sensor.is_empty()).then_some(req.sensor),
            user: (!req.user.is_empty()).then_some(req.user),
            after_seq: (req.after_seq != 0).then_some(req.after_seq),
        };
        let order = if req.newest_first {
            Order::NewestFirst
        } else {
            Order::OldestFirst
        };
        let (mut db, _) = self.open_index().await?;
        let indexed_through_seq = db.checkpoint().await.map_err(to_status)?;
        let page = db
            .query(&filter, order, cursor, limit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::QueryEventsResponse {
            events: page.events.iter().map(to_pb_event).collect(),
            next_page_token: page
                .next_cursor
                .map(|c| format!("{}{TOKEN_BINDING}{bound_to}", c.to_token()))
                .unwrap_or_default(),
            indexed_through_seq,
        }))
    }
}
