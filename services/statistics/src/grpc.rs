//! `kpr.v1.StatisticsService` over tonic: the public statistics surface for gRPC
//! clients. It serves the same disclosure-controlled tables as the public HTTP listener.

use std::sync::Arc;

use kpr_projection::figures::Figure;
use kpr_wire::pb;
use kpr_wire::pb::statistics_service_server::{StatisticsService, StatisticsServiceServer};
use tonic::{Request, Response, Status};

use crate::api::{Format, Rendered, Statistics, TableRequest};
use crate::error::{EXACT_ONLY_ADMIN, StatsError};

/// The gRPC face of [`Statistics`].
pub struct StatisticsGrpc {
    stats: Arc<Statistics>,
}

impl StatisticsGrpc {
    /// A service over `stats`.
    pub fn new(stats: Arc<Statistics>) -> StatisticsGrpc {
        StatisticsGrpc { stats }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> StatisticsServiceServer<Self> {
        StatisticsServiceServer::new(self)
    }
}

/// The one place statistics errors become gRPC statuses.
pub fn to_status(error: &StatsError) -> Status {
    match error {
        StatsError::BadRequest(m) => Status::invalid_argument(m.clone()),
        StatsError::Forbidden(_) => Status::permission_denied(error.to_string()),
        StatsError::NotFound(m) => Status::not_found(m.clone()),
        StatsError::Conflict(m) => Status::already_exists(m.clone()),
        StatsError::Unavailable(m) => Status::unavailable(m.clone()),
        StatsError::Internal(cause) => {
            tracing::error!(cause = %cause, "internal error in statistics");
            Status::internal("internal error; the operator's log has the cause")
        }
    }
}

fn format_of(value: i32) -> Format {
    if value == pb::TableFormat::Csv as i32 {
        Format::Csv
    } else {
        Format::JsonStat
    }
}

fn response(r: Rendered, release: &str) -> pb::TableResponse {
    pb::TableResponse {
        content_type: r.content_type.to_string(),
        body: r.body,
        log_position: r
            .log_position
            .split(',')
            .filter_map(|pair| pair.split_once(':'))
            .filter_map(|(p, o)| {
                Some(pb::PartitionOffset {
                    partition: p.parse().ok()?,
                    records: o.parse().ok()?,
                })
            })
            .collect(),
        definition_version: r.definition_version,
        population_year: r.population_year.unwrap_or(0),
        exact: r.exact,
        release: release.to_string(),
    }
}

#[tonic::async_trait]
impl StatisticsService for StatisticsGrpc {
    async fn get_table(
        &self,
        request: Request<pb::GetTableRequest>,
    ) -> Result<Response<pb::TableResponse>, Status> {
        let r = request.into_inner();
        // The fields are values, never query syntax: a field carrying `&` or `=` could
        // smuggle `exact=true` past the public surface.
        for (name, value) in [
            ("figure", &r.figure),
            ("region", &r.region),
            ("date", &r.date),
            ("period", &r.period),
        ] {
            if value.contains(['&', '=', '%']) {
                return Err(to_status(&StatsError::BadRequest(format!(
                    "{name} holds a character that no {name} has"
                ))));
            }
        }
        let mut query = vec![format!("region={}", r.region)];
        if r.year != 0 {
            query.push(format!("year={}", r.year));
        }
        if !r.date.is_empty() {
            query.push(format!("date={}", r.date));
        }
        if !r.period.is_empty() {
            query.push(format!("period={}", r.period));
        }
        let mut table_request =
            TableRequest::parse(&r.figure, &query.join("&")).map_err(|e| to_status(&e))?;
        // This is the public surface: never exact, never "as known at".
        if table_request.exact || table_request.at.is_some() {
            return Err(to_status(&StatsError::Forbidden(EXACT_ONLY_ADMIN)));
        }
        table_request.format = format_of(r.format);
        let stats = Arc::clone(&self.stats);
        let rendered = tokio::task::spawn_blocking(move || stats.render(&table_request))
            .await
            .map_err(|e| to_status(&StatsError::Internal(e.to_string())))?
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(response(rendered, "")))
    }

    async fn get_release_table(
        &self,
        request: Request<pb::GetReleaseTableRequest>,
    ) -> Result<Response<pb::TableResponse>, Status> {
        let r = request.into_inner();
        let region = if r.region.is_empty() {
            "EAK"
        } else {
            r.region.as_str()
        };
        let rendered = self
            .stats
            .releases()
            .and_then(|store| store.table(&r.release, &r.figure, region, format_of(r.format)))
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(response(rendered, &r.release)))
    }

    async fn list_figures(
        &self,
        _: Request<pb::ListFiguresRequest>,
    ) -> Result<Response<pb::ListFiguresResponse>, Status> {
        let figures = Figure::ALL
            .iter()
            .map(|f| pb::FigureInfo {
                id: f.id(),
                title: f.title().to_string(),
            })
            .collect();
        Ok(Response::new(pb::ListFiguresResponse { figures }))
    }
}
