//! The statistics API independent of transport: parse a request, compute the figure
//! from the current read model, protect it (unless exact), render it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use kpr_domain::date::Date;
use kpr_domain::municipality::Registry;
use kpr_eventlog::{EventLog, ReadOptions};
use kpr_projection::figures::{Figure, Query, compute, compute_from};
use kpr_projection::model::ReadModel;
use kpr_projection::period::Period;
use kpr_projection::population::{Population, Region};
use kpr_projection::snapshot::{People, Snapshot, people};
use kpr_projection::table::Table;

use crate::error::StatsError;
use crate::labels::Lang;
use crate::release::ReleaseStore;
use crate::{disclosure, format, present};

/// A log position: records per partition.
pub type Position = Vec<(u32, u64)>;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON-stat 2.0.
    JsonStat,
    /// CSV with `:` for suppressed cells.
    Csv,
}

impl Format {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::JsonStat => "application/json; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// A parsed table request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableRequest {
    /// Figure, region, date and period.
    pub query: Query,
    /// Output format.
    pub format: Format,
    /// Exact numbers (operator surface only).
    pub exact: bool,
    /// "As known at" this log position (next offset per partition; partitions not
    /// named count as empty). Operator surface only.
    pub at: Option<Vec<(u32, u64)>>,
    /// Language of labels and notes.
    pub lang: Lang,
}

/// Parses a log position `p:o,p:o`.
pub fn parse_position(text: &str) -> Result<Vec<(u32, u64)>, StatsError> {
    let mut out = Vec::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let parsed = pair
            .split_once(':')
            .and_then(|(p, o)| Some((p.parse::<u32>().ok()?, o.parse::<u64>().ok()?)));
        out.push(parsed.ok_or_else(|| {
            bad("at must be a log position such as 0:120,3:55 (partition:records)")
        })?);
    }
    out.sort_unstable();
    Ok(out)
}

/// Folds a prefix of the log into a fresh read model ("as known at" a position).
pub trait PrefixSource: Send + Sync {
    /// The read model of every record below `at` (next offset per partition).
    fn fold_to<'a>(
        &'a self,
        at: &'a [(u32, u64)],
    ) -> Pin<Box<dyn Future<Output = Result<ReadModel, StatsError>> + Send + 'a>>;
}

/// [`PrefixSource`] over any event log.
pub struct LogPrefix<L>(pub Arc<L>);

impl<L: EventLog> PrefixSource for LogPrefix<L> {
    fn fold_to<'a>(
        &'a self,
        at: &'a [(u32, u64)],
    ) -> Pin<Box<dyn Future<Output = Result<ReadModel, StatsError>> + Send + 'a>> {
        Box::pin(async move {
            let mut model = ReadModel::new();
            // `at` counts records per partition (the position answers state), so
            // fold the first `count` records of each partition.
            for &(partition, count) in at {
                let mut from = 0;
                let mut folded = 0u64;
                while folded < count {
                    let records = self
                        .0
                        .read(
                            partition,
                            from,
                            ReadOptions {
                                records_max: 4096,
                                wait_ms_max: 0,
                            },
                        )
                        .await
                        .map_err(|e| match e {
                            kpr_eventlog::LogError::NoSuchPartition { .. } => {
                                StatsError::BadRequest(format!("at: {e}"))
                            }
                            other => StatsError::Unavailable(other.to_string()),
                        })?;
                    let Some(last) = records.last() else { break };
                    from = last.position.offset + 1;
                    let take = ((count - folded) as usize).min(records.len());
                    // Decoding and folding is CPU work: off the async threads, which
                    // must keep answering health checks and cheap queries meanwhile.
                    let (returned, applied) = tokio::task::spawn_blocking(move || {
                        let mut model = model;
                        for record in records.iter().take(take) {
                            let (event, _) = kpr_wire::decode_stored(&record.payload)
                                .map_err(|e| StatsError::Internal(e.to_string()))?;
                            model.apply(record.position.partition, record.position.offset, &event);
                        }
                        Ok::<_, StatsError>((model, take as u64))
                    })
                    .await
                    .map_err(|e| StatsError::Internal(e.to_string()))??;
                    model = returned;
                    folded += applied;
                }
            }
            Ok(model)
        })
    }
}

fn bad(message: impl Into<String>) -> StatsError {
    StatsError::BadRequest(message.into())
}

/// Parses a region code: a 2024 municipality (`0301`), a county (`EK03`) or the
/// nation (`EAK`).
pub fn parse_region(text: &str) -> Result<Region, StatsError> {
    if text == "EAK" || text.is_empty() {
        return Ok(Region::Nation);
    }
    if let Some(county) = text.strip_prefix("EK") {
        return if Registry::get().counties().any(|(c, _)| c == county) {
            Ok(Region::County(county.to_string()))
        } else {
            Err(StatsError::NotFound(format!("no county {county}")))
        };
    }
    match Registry::get().municipality(text) {
        Some(m) => Ok(Region::Municipality(m.code.to_string())),
        None => Err(StatsError::NotFound(format!(
            "no 2024 municipality {text}; regions are 4-digit municipality codes, EKnn for a county or EAK for the nation"
        ))),
    }
}

/// Whether `query` asks for a frame the public surface serves (SPEC 6, as this
/// register reads it): status on 31 December of a year and the calendar year itself,
/// the reference frames a statistics office publishes. Any other date or period is
/// refused there with [`crate::error::PUBLIC_FRAMES_ONLY`].
pub fn check_public_frame(query: &Query) -> Result<(), StatsError> {
    let year = query.date.year();
    let published = Query::for_year(query.figure, query.region.clone(), year)
        .is_some_and(|frame| frame.date == query.date && frame.period == query.period);
    if published {
        Ok(())
    } else {
        Err(StatsError::Forbidden(crate::error::PUBLIC_FRAMES_ONLY))
    }
}

impl TableRequest {
    /// Parses `figure` and a URL query string (`region=…&year=…&date=…&period=…&format=…&exact=…`).
    pub fn parse(figure: &str, query_string: &str) -> Result<TableRequest, StatsError> {
        let figure = Figure::parse(figure).ok_or_else(|| {
            StatsError::NotFound(format!("no figure {figure}; figures are T1-T4 and I1-I18"))
        })?;
        let (mut region, mut year, mut date, mut period, mut format, mut exact, mut at) = (
            Region::Nation,
            None,
            None,
            None,
            Format::JsonStat,
            false,
            None,
        );
        let mut lang = Lang::No;
        for pair in query_string.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "region" => region = parse_region(value)?,
                "year" => {
                    year = Some(
                        value
                            .parse::<i32>()
                            .ok()
                            .filter(|y| (1900..=9999).contains(y))
                            .ok_or_else(|| bad("year must be a year such as 2024"))?,
                    )
                }
                "date" => date = Some(Date::parse(value).map_err(|e| bad(format!("date: {e}")))?),
                "period" => {
                    period = Some(Period::parse(value).map_err(|e| bad(format!("period: {e}")))?)
                }
                "format" => {
                    format = match value {
                        "json-stat" | "jsonstat" | "json" => Format::JsonStat,
                        "csv" => Format::Csv,
                        other => {
                            return Err(bad(format!("format {other:?}: use json-stat or csv")));
                        }
                    }
                }
                "exact" => exact = matches!(value, "true" | "1"),
                "lang" => lang = Lang::parse(value)?,
                "at" => {
                    at = Some(parse_position(
                        &value
                            .replace("%3A", ":")
                            .replace("%3a", ":")
                            .replace("%2C", ",")
                            .replace("%2c", ","),
                    )?)
                }
                other => return Err(bad(format!("unknown parameter {other:?}"))),
            }
        }
        let year = year
            .or(date.map(Date::year))
            .or(period.as_ref().map(|p| p.to.year()))
            .ok_or_else(|| bad("give year, date or period"))?;
        let defaults =
            Query::for_year(figure, region, year).ok_or_else(|| bad("year out of range"))?;
        let query = Query {
            // With only a period, the status date is the period's last day.
            date: date
                .or(period.as_ref().map(|p| p.to))
                .unwrap_or(defaults.date),
            period: period.unwrap_or(defaults.period),
            ..defaults
        };
        Ok(TableRequest {
            query,
            format,
            exact,
            at,
            lang,
        })
    }
}

/// A rendered answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// HTTP content type.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// Log position reflected (records per partition), as `partition:records` pairs joined by commas.
    pub log_position: String,
    /// Definition version.
    pub definition_version: u32,
    /// Population year used, if any.
    pub population_year: Option<i32>,
    /// Exact (not disclosure-controlled).
    pub exact: bool,
}

/// The statistics service over a shared read model.
pub struct Statistics {
    model: Arc<RwLock<ReadModel>>,
    population: Arc<Population>,
    prefix: Option<Arc<dyn PrefixSource>>,
    releases: Option<ReleaseStore>,
    cache: Mutex<SnapshotCache>,
    prefix_folds: tokio::sync::Semaphore,
    /// Why this node should not get traffic now (`None`: ready).
    not_ready: RwLock<Option<String>>,
    /// The newest protected frame of each year asked for (see [`Frame`]).
    frames: Mutex<HashMap<i32, Arc<Frame>>>,
    /// One frame computed at a time: who asks meanwhile waits and gets it.
    framing: Mutex<()>,
}

/// A reference frame of a year (every figure on 31 December and during the calendar
/// year, for the nation, each county and each municipality) at one model position,
/// protected together as linked tables. Public answers for that frame and a release of
/// that year at that position are cut from it, so what the public listener serves at
/// a position is protected together with everything else it serves at that position.
#[derive(Debug)]
pub struct Frame {
    /// The model position the frame reflects.
    pub position: Position,
    /// The model generation it was computed from (a statistics node can change a
    /// municipality without moving the position, so the cache is keyed on this).
    generation: u64,
    /// The year.
    pub year: i32,
    /// The protected tables (not yet presented).
    pub tables: Vec<Table>,
    /// Query and region of each table.
    pub queries: Vec<(Query, Region)>,
    /// What the protection did.
    pub protection: crate::linked::Protection,
    /// (figure id, region code) -> index into `tables`.
    index: HashMap<(String, String), usize>,
}

impl Frame {
    /// The protected table of `query`, if the frame holds it.
    pub fn table(&self, query: &Query) -> Option<&Table> {
        let key = (query.figure.id(), query.region.code());
        self.index.get(&key).and_then(|&i| self.tables.get(i))
    }
}

/// Years of frames kept (the newest position of each).
const FRAMES_MAX: usize = 12;

/// Snapshots of the read model at one position: the people of all regions, and each
/// region's snapshot once asked for. Replaced whenever the model moves.
#[derive(Default)]
struct SnapshotCache {
    generation: Option<u64>,
    people: Option<Arc<People>>,
    regions: HashMap<Region, Arc<Snapshot>>,
    /// Rendered answers at this generation: a table at a log position never changes.
    answers: HashMap<String, Rendered>,
}

/// "As known at" folds running at once: each reads and folds a prefix of the log on
/// a core of its own, so more would only slow each other and the live model.
pub const PREFIX_FOLDS_MAX: usize = 2;

/// Most answers kept per generation.
const ANSWERS_MAX: usize = 4096;

impl std::fmt::Debug for Statistics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statistics")
            .field("releases", &self.releases.is_some())
            .finish()
    }
}

impl Statistics {
    /// A service over `model` with the shipped population.
    pub fn new(model: Arc<RwLock<ReadModel>>) -> Statistics {
        Statistics {
            model,
            population: Arc::new(Population::embedded().clone()),
            prefix: None,
            releases: None,
            cache: Mutex::new(SnapshotCache::default()),
            prefix_folds: tokio::sync::Semaphore::new(PREFIX_FOLDS_MAX),
            not_ready: RwLock::new(None),
            frames: Mutex::new(HashMap::new()),
            framing: Mutex::new(()),
        }
    }

    /// The frame of `year` at `position` of `model` (the live model, read-locked by the
    /// caller): from the cache when it is of this model generation, else computed now.
    pub fn frame(
        &self,
        model: &ReadModel,
        position: &[(u32, u64)],
        year: i32,
    ) -> Result<Arc<Frame>, StatsError> {
        let poisoned = || StatsError::Internal("frame lock poisoned".into());
        let _one = self.framing.lock().map_err(|_| poisoned())?;
        let cached = self
            .frames
            .lock()
            .map_err(|_| poisoned())?
            .get(&year)
            .cloned();
        if let Some(frame) = cached.filter(|f| f.generation == model.generation()) {
            return Ok(frame);
        }
        let started = std::time::Instant::now();
        let (tables, queries, protection) =
            crate::release::protected_tables(model, position, self, year, true)?;
        tracing::info!(
            year,
            position = kpr_eventlog::position_text(position),
            seconds = started.elapsed().as_secs_f64(),
            primary = protection.primary,
            secondary = protection.secondary,
            widened = protection.widened,
            rounds = protection.rounds,
            left = protection.findings.len(),
            "frame protected as linked tables"
        );
        let index = queries
            .iter()
            .enumerate()
            .map(|(i, (q, r))| ((q.figure.id(), r.code()), i))
            .collect();
        let frame = Arc::new(Frame {
            position: position.to_vec(),
            generation: model.generation(),
            year,
            tables,
            queries,
            protection,
            index,
        });
        let mut frames = self.frames.lock().map_err(|_| poisoned())?;
        frames.insert(year, Arc::clone(&frame));
        while frames.len() > FRAMES_MAX {
            let Some(oldest) = frames.keys().min().copied() else {
                break;
            };
            frames.remove(&oldest);
        }
        Ok(frame)
    }

    /// Marks the node not ready for traffic, saying why (readiness answers 503 with
    /// the reason); `None` marks it ready again.
    pub fn set_not_ready(&self, reason: Option<String>) {
        if let Ok(mut slot) = self.not_ready.write() {
            *slot = reason;
        }
    }

    /// Why the node is not ready, if it is not.
    pub fn not_ready(&self) -> Option<String> {
        match self.not_ready.read() {
            Ok(slot) => slot.clone(),
            Err(_) => Some("readiness lock poisoned".into()),
        }
    }

    /// With population denominators from `population` (an imported newer CSV).
    pub fn with_population(mut self, population: Population) -> Statistics {
        self.population = Arc::new(population);
        self
    }

    /// The population used for denominators.
    pub fn population(&self) -> &Population {
        &self.population
    }

    /// With "as known at" queries over `prefix`.
    pub fn with_prefix(mut self, prefix: Arc<dyn PrefixSource>) -> Statistics {
        self.prefix = Some(prefix);
        self
    }

    /// With releases kept in `store`.
    pub fn with_releases(mut self, store: ReleaseStore) -> Statistics {
        self.releases = Some(store);
        self
    }

    /// The release store, if releases are kept.
    pub fn releases(&self) -> Result<&ReleaseStore, StatsError> {
        self.releases
            .as_ref()
            .ok_or_else(|| StatsError::NotFound("this register keeps no releases".into()))
    }

    /// Renders a table "as known at" `request.at` (folds that prefix of the log). At
    /// most [`PREFIX_FOLDS_MAX`] such folds run at once, each on the blocking pool.
    pub async fn render_at(
        self: &Arc<Self>,
        request: TableRequest,
    ) -> Result<Rendered, StatsError> {
        let (Some(prefix), Some(at)) = (&self.prefix, &request.at) else {
            return Err(StatsError::BadRequest(
                "as-known-at queries are not available here".into(),
            ));
        };
        let _permit = self
            .prefix_folds
            .acquire()
            .await
            .map_err(|e| StatsError::Internal(e.to_string()))?;
        let model = prefix.fold_to(at).await?;
        let stats = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut table = compute(&model, &stats.population, &request.query);
            if !request.exact {
                disclosure::protect(&mut table);
            }
            let span = span_of(&model, &request.query.region);
            present::present(&mut table, &request.query, request.lang, span);
            render_in(&table, request.format, request.lang)
        })
        .await
        .map_err(|e| StatsError::Internal(e.to_string()))
    }

    /// The read model "as known at" `at` (next offset per partition): a fold of that
    /// prefix of the log, on a node that can fold prefixes.
    pub async fn model_at(&self, at: &[(u32, u64)]) -> Result<ReadModel, StatsError> {
        let Some(prefix) = &self.prefix else {
            return Err(StatsError::BadRequest(
                "as-known-at folds are not available here".into(),
            ));
        };
        let _permit = self
            .prefix_folds
            .acquire()
            .await
            .map_err(|e| StatsError::Internal(e.to_string()))?;
        prefix.fold_to(at).await
    }

    /// The read model.
    pub fn model(&self) -> &Arc<RwLock<ReadModel>> {
        &self.model
    }

    /// Computes a table: exact when asked (the caller decides who may ask), otherwise
    /// disclosure-controlled.
    pub fn table(&self, request: &TableRequest) -> Result<Table, StatsError> {
        let model = self
            .model
            .read()
            .map_err(|_| StatsError::Internal("read model lock poisoned".into()))?;
        let position = model.reflected();
        self.published(
            &model,
            &position,
            &request.query,
            request.exact,
            request.lang,
        )
    }

    /// One table from a read-locked model: computed, protected unless `exact`, with
    /// its notes and labels in `lang`.
    pub fn published(
        &self,
        model: &ReadModel,
        position: &[(u32, u64)],
        query: &Query,
        exact: bool,
        lang: Lang,
    ) -> Result<Table, StatsError> {
        // A public frame (31 December, the calendar year) is cut from the year's frame,
        // protected with every other table of it; other dates (operators only) are
        // protected table by table.
        let framed = (!exact && check_public_frame(query).is_ok())
            .then(|| self.frame(model, position, query.date.year()))
            .transpose()?;
        let mut table = match framed.as_deref().and_then(|f| f.table(query)) {
            Some(table) => table.clone(),
            None => {
                let snapshot = self.snapshot(model, position, &query.region)?;
                let mut table = compute_from(&snapshot, position, &self.population, query);
                if !exact {
                    disclosure::protect(&mut table);
                }
                table
            }
        };
        present::present(&mut table, query, lang, span_of(model, &query.region));
        Ok(table)
    }

    /// Many tables from one model generation (one read lock), with the position they
    /// all reflect: what one answer over many regions and periods is built from.
    pub fn tables_at_once(
        &self,
        queries: &[Query],
        exact: bool,
        lang: Lang,
    ) -> Result<(Vec<Table>, Position), StatsError> {
        let model = self
            .model
            .read()
            .map_err(|_| StatsError::Internal("read model lock poisoned".into()))?;
        let position = model.reflected();
        let tables = queries
            .iter()
            .map(|q| self.published(&model, &position, q, exact, lang))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((tables, position))
    }

    /// Earliest and latest effective date of the events held, over every region.
    pub fn span(&self) -> Result<Option<(Date, Date)>, StatsError> {
        let model = self
            .model
            .read()
            .map_err(|_| StatsError::Internal("read model lock poisoned".into()))?;
        Ok(model.span_where(|_| true))
    }

    /// The snapshot of a region at the model's position, from the cache when the
    /// model has not moved since it was taken (the model is read-locked by the caller).
    pub fn snapshot(
        &self,
        model: &ReadModel,
        position: &[(u32, u64)],
        region: &Region,
    ) -> Result<Arc<Snapshot>, StatsError> {
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| StatsError::Internal("snapshot cache lock poisoned".into()))?;
        // Keyed on the model's generation, not its position: a statistics node can
        // change a municipality without moving the position.
        let _ = position;
        if cache.generation != Some(model.generation()) || cache.people.is_none() {
            *cache = SnapshotCache {
                generation: Some(model.generation()),
                people: Some(Arc::new(people(model))),
                regions: HashMap::new(),
                answers: HashMap::new(),
            };
        }
        if let Some(snapshot) = cache.regions.get(region) {
            return Ok(Arc::clone(snapshot));
        }
        let people = cache.people.clone().unwrap_or_default();
        let snapshot = Arc::new(Snapshot::take_with(model, region, people));
        cache.regions.insert(region.clone(), Arc::clone(&snapshot));
        Ok(snapshot)
    }

    /// Computes and renders a table; an answer already rendered at the model's
    /// current generation is served again as it was.
    pub fn render(&self, request: &TableRequest) -> Result<Rendered, StatsError> {
        let key = format!("{:?}|{}|{:?}", request.query, request.exact, request.format);
        let generation = self
            .model
            .read()
            .map_err(|_| StatsError::Internal("read model lock poisoned".into()))?
            .generation();
        let lock = || {
            self.cache
                .lock()
                .map_err(|_| StatsError::Internal("snapshot cache lock poisoned".into()))
        };
        {
            let cache = lock()?;
            if cache.generation == Some(generation)
                && let Some(answer) = cache.answers.get(&key)
            {
                return Ok(answer.clone());
            }
        }
        let rendered = render_in(&self.table(request)?, request.format, request.lang);
        let mut cache = lock()?;
        // Kept only when the table was computed at the generation read above (the
        // model may have moved meanwhile; then the cache belongs to a newer one).
        if cache.generation == Some(generation) {
            if cache.answers.len() >= ANSWERS_MAX {
                cache.answers.clear();
            }
            cache.answers.insert(key, rendered.clone());
        }
        Ok(rendered)
    }
}

/// Earliest and latest effective date of the events `model` holds for `region`.
pub fn span_of(model: &ReadModel, region: &Region) -> Option<(Date, Date)> {
    model.span_where(|code| region.contains(code.as_str()))
}

/// Renders a computed table (units named in Norwegian).
pub fn render(table: &Table, format: Format) -> Rendered {
    render_in(table, format, Lang::No)
}

/// Renders a computed table, units named in `lang`.
pub fn render_in(table: &Table, format: Format, lang: Lang) -> Rendered {
    let body = match format {
        Format::JsonStat => format::to_json_stat_in(table, lang),
        Format::Csv => format::to_csv(table),
    };
    Rendered {
        content_type: format.content_type(),
        body,
        log_position: kpr_eventlog::position_text(&table.meta.log_position),
        definition_version: table.meta.definition_version,
        population_year: table.meta.population_year,
        exact: table.meta.exact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        let r = TableRequest::parse("t2", "region=0301&year=2024&format=csv").unwrap();
        assert_eq!(r.query.figure, Figure::T2);
        assert_eq!(r.query.date.to_string(), "2024-12-31");
        assert_eq!(r.format, Format::Csv);
        let r = TableRequest::parse("I9", "region=EK46&period=2024K2").unwrap();
        assert_eq!(
            (r.query.period.code.as_str(), r.query.region.code()),
            ("2024K2", "EK46".to_string())
        );
        let r = TableRequest::parse("I1", "date=2025-03-31&exact=true").unwrap();
        assert!(r.exact && r.query.region == Region::Nation);
        assert!(matches!(
            TableRequest::parse("X9", "year=2024"),
            Err(StatsError::NotFound(_))
        ));
        assert!(matches!(
            TableRequest::parse("T1", "region=9999&year=2024"),
            Err(StatsError::NotFound(_))
        ));
        assert!(matches!(
            TableRequest::parse("T1", "region=0301"),
            Err(StatsError::BadRequest(_))
        ));
        assert!(matches!(
            TableRequest::parse("T1", "year=2024&format=xml"),
            Err(StatsError::BadRequest(_))
        ));
        assert!(matches!(
            TableRequest::parse("T1", "year=2024&colour=red"),
            Err(StatsError::BadRequest(_))
        ));
    }
}
