//! Every table and indicator of SPEC 5.2 as a pure function of the read model, the
//! population and a query. Values are exact; disclosure control is the publishing
//! layer's job.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::FoldHash;

type HashMap<K, V> = std::collections::HashMap<K, V, FoldHash>;
type HashSet<K> = std::collections::HashSet<K, FoldHash>;

use kpr_domain::date::Date;
use kpr_domain::event::{Area, CheckKind, EndReason, Outcome, Variable};
use kpr_domain::person::{Pseudonym, Sex};
use kpr_domain::service::{Measure as CodeMeasure, SERVICES, ServiceCode, ServiceGroup};

use crate::bands::{AGE_80_PLUS, ALL_AGES, AgeBand, DETAILED, KOSTRA, age_in};
use crate::model::ReadModel;
use crate::period::Period;
use crate::population::{Population, Region};
use crate::snapshot::{Person, Snapshot};
use crate::table::{Category, Dimension, Measure, Quantity, Status, Table, TableMeta};

/// Version of the figure definitions; part of every answer (SPEC 7).
pub const DEFINITION_VERSION: u32 = 1;

/// The figures of SPEC 5.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(missing_docs)]
pub enum Figure {
    T1,
    T2,
    T3,
    T4,
    I1,
    I2,
    I3,
    I4,
    I5,
    I6,
    I7,
    I8,
    I9,
    I10,
    I11,
    I12,
    I13,
    I14,
    I15,
    I16,
    I17,
    I18,
}

impl Figure {
    /// Every figure in order.
    pub const ALL: [Figure; 22] = [
        Figure::T1,
        Figure::T2,
        Figure::T3,
        Figure::T4,
        Figure::I1,
        Figure::I2,
        Figure::I3,
        Figure::I4,
        Figure::I5,
        Figure::I6,
        Figure::I7,
        Figure::I8,
        Figure::I9,
        Figure::I10,
        Figure::I11,
        Figure::I12,
        Figure::I13,
        Figure::I14,
        Figure::I15,
        Figure::I16,
        Figure::I17,
        Figure::I18,
    ];

    /// The id, e.g. "T2".
    pub fn id(self) -> String {
        format!("{self:?}")
    }

    /// The figure with id `text` (case-insensitive).
    pub fn parse(text: &str) -> Option<Figure> {
        Figure::ALL
            .into_iter()
            .find(|f| f.id().eq_ignore_ascii_case(text))
    }

    /// Title.
    pub fn title(self) -> &'static str {
        match self {
            Figure::T1 => "Recipients during the period, by service, age and sex",
            Figure::T2 => "Recipients on the date, by service, age and sex",
            Figure::T3 => "Hours per week on the date, by service",
            Figure::T4 => "Stay days within the period, by service",
            Figure::I1 => "Inhabitants 80+ in long-term stay",
            Figure::I2 => "Inhabitants 80+ in institution",
            Figure::I3 => "Inhabitants 80+ with home services",
            Figure::I4 => "Users per 1000 inhabitants, by service group and age",
            Figure::I5 => "Mean hours per week, home nursing",
            Figure::I6 => "Mean hours per week, all hour services",
            Figure::I7 => "Share of home-service users with more than 35.5 hours per week",
            Figure::I8 => "Share with extensive needs",
            Figure::I9 => "Short-term stays per 1000 inhabitants 80+",
            Figure::I10 => "Long-term residents with a physician's check in 12 months",
            Figure::I11 => "Long-term residents 67+ with a medication review in 12 months",
            Figure::I12 => "Long-term residents 67+ screened for nutrition in 12 months",
            Figure::I13 => "Long-term residents with a dental check in 12 months",
            Figure::I14 => "Coverage during the year, by age and sex",
            Figure::I15 => "Processing time from application to decision (days)",
            Figure::I16 => "Waiting time from decision to start (days)",
            Figure::I17 => "Long-term stay waiting list",
            Figure::I18 => "Rehabilitation stays ended with the person home",
        }
    }
}

/// What a figure is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Which figure.
    pub figure: Figure,
    /// Municipality, county or nation.
    pub region: Region,
    /// Status date D (figures "on D").
    pub date: Date,
    /// Period P (figures "during P").
    pub period: Period,
}

impl Query {
    /// The defaults of year Y: D = 31 December Y, P = year Y.
    pub fn for_year(figure: Figure, region: Region, year: i32) -> Option<Query> {
        Some(Query {
            figure,
            region,
            date: Date::from_ymd(year, 12, 31)?,
            period: Period::year(year)?,
        })
    }

    /// Whether the figure is "during P" (otherwise "on D").
    pub fn uses_period(&self) -> bool {
        uses_period(self.figure)
    }
}

/// Whether a figure counts "during the period P" (otherwise "on the date D").
pub fn uses_period(figure: Figure) -> bool {
    matches!(
        figure,
        Figure::T1 | Figure::T4 | Figure::I9 | Figure::I14 | Figure::I15 | Figure::I18
    )
}

/// Computes a figure with exact values.
pub fn compute(model: &ReadModel, population: &Population, query: &Query) -> Table {
    let snapshot = Snapshot::take(model, &query.region);
    compute_from(&snapshot, &model.reflected(), population, query)
}

/// Computes a figure from a snapshot already taken for `query.region` (many figures of
/// one region share one snapshot). `position` is the model position it reflects.
pub fn compute_from(
    snapshot: &Snapshot,
    position: &[(u32, u64)],
    population: &Population,
    query: &Query,
) -> Table {
    let mut ctx = Ctx {
        snapshot,
        population,
        query,
        population_year: None,
        population_wanted: None,
    };
    let mut table = match query.figure {
        Figure::T1 => ctx.recipients(true),
        Figure::T2 => ctx.recipients(false),
        Figure::T3 => ctx.t3(),
        Figure::T4 => ctx.t4(),
        Figure::I1 => ctx.share_80(|c| c.is_long()),
        Figure::I2 => ctx.share_80(|c| c.is_institution()),
        Figure::I3 => ctx.share_80(|c| c.is_home()),
        Figure::I4 => ctx.i4(),
        Figure::I5 => ctx.mean_hours(|c| c.number() == 15, false),
        Figure::I6 => ctx.mean_hours(|c| c.is_hours_total(), true),
        Figure::I7 => ctx.i7(),
        Figure::I8 => ctx.i8(),
        Figure::I9 => ctx.i9(),
        Figure::I10 => ctx.resident_check(CheckKind::Physician, 0),
        Figure::I11 => ctx.resident_check(CheckKind::MedicationReview, 67),
        Figure::I12 => ctx.i12(),
        Figure::I13 => ctx.resident_check(CheckKind::Dental, 0),
        Figure::I14 => ctx.i14(),
        Figure::I15 => ctx.i15(),
        Figure::I16 => ctx.i16(),
        Figure::I17 => ctx.i17(),
        Figure::I18 => ctx.i18(),
    };
    table.meta = TableMeta {
        log_position: position.to_vec(),
        definition_version: DEFINITION_VERSION,
        population_year: ctx.population_year,
        population_wanted: ctx.population_wanted,
        notes: Vec::new(),
        reference: if query.uses_period() {
            query.period.code.clone()
        } else {
            query.date.to_string()
        },
        exact: true,
    };
    table
}

/// The published age categories: the detailed bands, the KOSTRA bands not already
/// among them, and all ages (the margin).
pub const ALDER: [AgeBand; 9] = [
    DETAILED[0],
    DETAILED[1],
    DETAILED[2],
    DETAILED[3],
    DETAILED[4],
    DETAILED[5],
    KOSTRA[0],
    KOSTRA[2],
    ALL_AGES,
];
const ALDER_TOTAL: usize = 8;

fn sex_index(sex: Sex) -> usize {
    match sex {
        Sex::Male => 0,
        Sex::Female => 1,
        Sex::Unknown => 2,
    }
}

/// Nearest-rank percentile: the value at rank ⌈p·n⌉ of the sorted values.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0).then(|| numerator / denominator)
}

fn category(code: impl Into<String>, label: impl Into<String>) -> Category {
    Category {
        code: code.into(),
        label: label.into(),
    }
}

fn plain(id: &str, label: &str, categories: Vec<Category>) -> Dimension {
    Dimension {
        id: id.into(),
        label: label.into(),
        categories,
        total: None,
        partitions: Vec::new(),
    }
}

fn alder() -> Dimension {
    Dimension {
        id: "Alder".into(),
        label: "alder".into(),
        categories: ALDER.iter().map(|b| category(b.code, b.label)).collect(),
        total: Some(ALDER_TOTAL),
        partitions: vec![vec![0, 1, 2, 3, 4, 5], vec![6, 3, 7]],
    }
}

fn kjonn() -> Dimension {
    Dimension {
        id: "Kjonn".into(),
        label: "kjønn".into(),
        categories: vec![
            category("1", "Menn"),
            category("2", "Kvinner"),
            category("9", "Ukjent"),
            category("0", "Begge kjønn"),
        ],
        total: Some(3),
        partitions: vec![vec![0, 1, 2]],
    }
}

fn service_dim(codes: &[ServiceCode]) -> Dimension {
    plain(
        "Tjeneste",
        "tjeneste",
        codes
            .iter()
            .map(|c| category(format!("{:02}", c.number()), c.info().name_nb))
            .collect(),
    )
}

fn group_dim(with_all: bool) -> Dimension {
    let mut categories: Vec<Category> = ServiceGroup::ALL
        .iter()
        .map(|g| category(g.name(), g.name()))
        .collect();
    if with_all {
        categories.push(category("all", "all services"));
    }
    plain("Tjeneste", "tjenestegruppe", categories)
}

fn all_codes() -> Vec<ServiceCode> {
    SERVICES
        .iter()
        .filter_map(|s| ServiceCode::from_number(u32::from(s.code)).ok())
        .collect()
}

/// One measure of ContentsCode.
#[derive(Clone, Copy)]
struct M(
    &'static str,
    &'static str,
    Quantity,
    Option<usize>,
    Option<usize>,
);

/// Builds a table from dimensions (without ContentsCode) and measures.
struct Builder {
    table: Table,
}

impl Builder {
    fn new(figure: Figure, mut dimensions: Vec<Dimension>, measures: &[M]) -> Builder {
        dimensions.push(plain(
            "ContentsCode",
            "statistikkvariabel",
            measures.iter().map(|m| category(m.0, m.1)).collect(),
        ));
        let size: usize = dimensions.iter().map(|d| d.categories.len()).product();
        Builder {
            table: Table {
                figure: figure.id(),
                label: figure.title().to_string(),
                dimensions,
                measures: measures
                    .iter()
                    .map(|m| Measure {
                        quantity: m.2,
                        numerator: m.3,
                        denominator: m.4,
                    })
                    .collect(),
                values: vec![Some(0.0); size],
                status: vec![Status::Shown; size],
                meta: TableMeta {
                    log_position: Vec::new(),
                    definition_version: DEFINITION_VERSION,
                    population_year: None,
                    population_wanted: None,
                    notes: Vec::new(),
                    reference: String::new(),
                    exact: true,
                },
            },
        }
    }

    fn set(&mut self, coords: &[usize], value: Option<f64>) {
        let offset = self.table.offset(coords);
        if let Some(cell) = self.table.values.get_mut(offset) {
            *cell = value;
        }
    }

    fn add(&mut self, coords: &[usize], value: f64) {
        let offset = self.table.offset(coords);
        if let Some(Some(cell)) = self.table.values.get_mut(offset) {
            *cell += value;
        }
    }

    fn get(&self, coords: &[usize]) -> f64 {
        self.table
            .values
            .get(self.table.offset(coords))
            .copied()
            .flatten()
            .unwrap_or(0.0)
    }

    fn finish(self) -> Table {
        self.table
    }
}

/// What one person has on a day: per active service, its code and hours.
/// Hours are kept in hundredths (u64) and summed as integers: float sums would depend
/// on the order persons are visited, and a threshold such as 35.5 h must not.
type Holdings = HashMap<Pseudonym, Vec<(ServiceCode, u64)>>;

/// Centihours as hours for publication.
fn hours_of(centi: u64) -> f64 {
    centi as f64 / 100.0
}

struct Ctx<'a> {
    snapshot: &'a Snapshot,
    population: &'a Population,
    query: &'a Query,
    population_year: Option<i32>,
    /// The population year SPEC 2 asks for (the one after the reference year).
    population_wanted: Option<i32>,
}

impl Ctx<'_> {
    fn region_dim(&self) -> Dimension {
        let label = match &self.query.region {
            Region::Nation => "Hele landet".to_string(),
            Region::County(c) => format!("fylke {c}"),
            Region::Municipality(m) => format!("kommune {m}"),
        };
        plain(
            "Region",
            "region",
            vec![category(self.query.region.code(), label)],
        )
    }

    fn tid(&self, by_period: bool) -> Dimension {
        let code = if by_period {
            self.query.period.code.clone()
        } else {
            self.query.date.to_string()
        };
        plain("Tid", "tid", vec![category(code.clone(), code)])
    }

    /// Population on 1 January of the year after the year of `day` (nearest available
    /// year): "per 31.12 of year Y" uses 1 January Y+1 (SPEC 2), and every other date
    /// or period ending in year Y is counted against the same population (I14's
    /// "1 Jan Y+1" for quarters and months too).
    fn population(&mut self, day: Date, sex: Option<Sex>, band: &AgeBand) -> f64 {
        let wanted = day.year() + 1;
        let year = self.population.nearest_year(wanted).unwrap_or(wanted);
        self.population_year = Some(year);
        self.population_wanted = Some(wanted);
        self.population.count(year, &self.query.region, sex, band) as f64
    }

    fn person(&self, pseudonym: &Pseudonym) -> Option<&Person> {
        self.snapshot.people.get(pseudonym)
    }

    fn age_on_date(&self, p: &Person) -> u16 {
        age_in(self.query.date.year(), p.birth_year)
    }

    fn age_in_period(&self, p: &Person) -> u16 {
        age_in(self.query.period.age_year(), p.birth_year)
    }

    /// Active services with their hours on day D, per person.
    fn holdings_on(&self, day: Date) -> Holdings {
        let mut out: Holdings = HashMap::default();
        for service in &self.snapshot.services {
            if let Some(e) = service.episode.as_ref().filter(|e| e.active_on(day)) {
                let hours = if e.code.measure() == CodeMeasure::Hours {
                    e.hours_on(day).map_or(0, |h| u64::from(h.0))
                } else {
                    0
                };
                out.entry(service.person).or_default().push((e.code, hours));
            }
        }
        out
    }

    /// Codes each person had on at least one day of P.
    fn codes_during(&self, period: &Period) -> HashMap<Pseudonym, BTreeSet<ServiceCode>> {
        let mut out: HashMap<Pseudonym, BTreeSet<ServiceCode>> = HashMap::default();
        for service in &self.snapshot.services {
            if let Some(e) = service
                .episode
                .as_ref()
                .filter(|e| e.active_during(period.from, period.to))
            {
                out.entry(service.person).or_default().insert(e.code);
            }
        }
        out
    }

    /// T1 (during P) and T2 (on D): persons by code × age × sex.
    fn recipients(&self, during: bool) -> Table {
        let codes = all_codes();
        let figure = if during { Figure::T1 } else { Figure::T2 };
        let mut b = Builder::new(
            figure,
            vec![
                self.region_dim(),
                service_dim(&codes),
                alder(),
                kjonn(),
                self.tid(during),
            ],
            &[M("personer", "personer", Quantity::Persons, None, None)],
        );
        let per_person: Vec<(Pseudonym, BTreeSet<ServiceCode>)> = if during {
            self.codes_during(&self.query.period).into_iter().collect()
        } else {
            self.holdings_on(self.query.date)
                .into_iter()
                .map(|(p, h)| (p, h.into_iter().map(|(c, _)| c).collect()))
                .collect()
        };
        for (pseudonym, held) in per_person {
            let Some(person) = self.person(&pseudonym) else {
                continue;
            };
            let age = if during {
                self.age_in_period(person)
            } else {
                self.age_on_date(person)
            };
            for code in held {
                let Some(ci) = codes.iter().position(|c| *c == code) else {
                    continue;
                };
                for (ai, band) in ALDER.iter().enumerate().filter(|(_, b)| b.contains(age)) {
                    let _ = band;
                    b.add(&[0, ci, ai, sex_index(person.sex), 0, 0], 1.0);
                    b.add(&[0, ci, ai, 3, 0, 0], 1.0);
                }
            }
        }
        b.finish()
    }

    fn t3(&self) -> Table {
        let codes: Vec<ServiceCode> = all_codes()
            .into_iter()
            .filter(|c| c.measure() == CodeMeasure::Hours)
            .collect();
        let mut b = Builder::new(
            Figure::T3,
            vec![self.region_dim(), service_dim(&codes), self.tid(false)],
            &[
                M("personer", "personer", Quantity::Persons, None, None),
                M("timer", "timer per uke, sum", Quantity::Hours, None, None),
                M(
                    "timer_snitt",
                    "timer per uke, gjennomsnitt",
                    Quantity::Mean,
                    Some(1),
                    Some(0),
                ),
            ],
        );
        // Persons and centihours per code, as integers.
        let mut totals: BTreeMap<ServiceCode, (u64, u64)> = BTreeMap::new();
        for held in self.holdings_on(self.query.date).values() {
            let mut per_code: BTreeMap<ServiceCode, u64> = BTreeMap::new();
            for (code, hours) in held {
                *per_code.entry(*code).or_default() += hours;
            }
            for (code, hours) in per_code {
                let total = totals.entry(code).or_default();
                total.0 += 1;
                total.1 += hours;
            }
        }
        for (ci, code) in codes.iter().enumerate() {
            let (persons, centi) = totals.get(code).copied().unwrap_or_default();
            b.set(&[0, ci, 0, 0], Some(persons as f64));
            b.set(&[0, ci, 0, 1], Some(hours_of(centi)));
            b.set(&[0, ci, 0, 2], ratio(hours_of(centi), persons as f64));
        }
        b.finish()
    }

    fn t4(&self) -> Table {
        let codes: Vec<ServiceCode> = all_codes()
            .into_iter()
            .filter(|c| c.is_stay_days())
            .collect();
        let mut b = Builder::new(
            Figure::T4,
            vec![self.region_dim(), service_dim(&codes), self.tid(true)],
            &[M("dogn", "oppholdsdøgn", Quantity::Days, None, None)],
        );
        let period = &self.query.period;
        for e in self
            .snapshot
            .services
            .iter()
            .filter_map(|s| s.episode.as_ref())
        {
            if let Some(ci) = codes.iter().position(|c| *c == e.code) {
                b.add(
                    &[0, ci, 0, 0],
                    f64::from(e.active_days(period.from, period.to)),
                );
            }
        }
        b.finish()
    }

    fn rate_measures(rate: Quantity) -> [M; 3] {
        [
            M("teller", "teller (personer)", Quantity::Persons, None, None),
            M("nevner", "nevner", Quantity::Population, None, None),
            M(
                "andel",
                if rate == Quantity::Per1000 {
                    "per 1000"
                } else {
                    "andel"
                },
                rate,
                Some(0),
                Some(1),
            ),
        ]
    }

    /// I1-I3: persons 80+ with a code of the set on D / population 80+.
    fn share_80(&mut self, in_set: impl Fn(ServiceCode) -> bool) -> Table {
        let figure = self.query.figure;
        let mut b = Builder::new(
            figure,
            vec![self.region_dim(), self.tid(false)],
            &Ctx::rate_measures(Quantity::Share),
        );
        let numerator = self
            .holdings_on(self.query.date)
            .iter()
            .filter(|(p, held)| {
                held.iter().any(|(c, _)| in_set(*c))
                    && self
                        .person(p)
                        .is_some_and(|p| AGE_80_PLUS.contains(self.age_on_date(p)))
            })
            .count() as f64;
        let denominator = self.population(self.query.date, None, &AGE_80_PLUS);
        b.set(&[0, 0, 0], Some(numerator));
        b.set(&[0, 0, 1], Some(denominator));
        b.set(&[0, 0, 2], ratio(numerator, denominator));
        b.finish()
    }

    fn i4(&mut self) -> Table {
        let mut b = Builder::new(
            Figure::I4,
            vec![self.region_dim(), group_dim(true), alder(), self.tid(false)],
            &Ctx::rate_measures(Quantity::Per1000),
        );
        let holdings = self.holdings_on(self.query.date);
        let groups = ServiceGroup::ALL.len();
        for (pseudonym, held) in &holdings {
            let Some(person) = self.person(pseudonym) else {
                continue;
            };
            let age = self.age_on_date(person);
            let mut in_groups: BTreeSet<usize> = held
                .iter()
                .filter_map(|(c, _)| ServiceGroup::ALL.iter().position(|g| *g == c.group()))
                .collect();
            in_groups.insert(groups);
            for gi in in_groups {
                for ai in (0..ALDER.len()).filter(|&ai| ALDER[ai].contains(age)) {
                    b.add(&[0, gi, ai, 0, 0], 1.0);
                }
            }
        }
        for (ai, band) in ALDER.iter().enumerate() {
            let population = self.population(self.query.date, None, band);
            for gi in 0..=groups {
                let n = b.get(&[0, gi, ai, 0, 0]);
                b.set(&[0, gi, ai, 0, 1], Some(population));
                b.set(&[0, gi, ai, 0, 2], ratio(n * 1000.0, population));
            }
        }
        b.finish()
    }

    /// I5 (code 15) and I6 (HOURS_TOTAL, per person sums averaged).
    fn mean_hours(&self, in_set: impl Fn(ServiceCode) -> bool, _per_person: bool) -> Table {
        let mut b = Builder::new(
            self.query.figure,
            vec![self.region_dim(), self.tid(false)],
            &[
                M("timer", "timer per uke, sum", Quantity::Hours, None, None),
                M("personer", "personer", Quantity::Persons, None, None),
                M(
                    "timer_snitt",
                    "timer per uke, gjennomsnitt",
                    Quantity::Mean,
                    Some(0),
                    Some(1),
                ),
            ],
        );
        let mut centi = 0u64;
        let mut persons = 0u64;
        for held in self.holdings_on(self.query.date).values() {
            let mine: Vec<u64> = held
                .iter()
                .filter(|(c, _)| in_set(*c))
                .map(|(_, h)| *h)
                .collect();
            if !mine.is_empty() {
                persons += 1;
                centi += mine.iter().sum::<u64>();
            }
        }
        let (hours, persons) = (hours_of(centi), persons as f64);
        b.set(&[0, 0, 0], Some(hours));
        b.set(&[0, 0, 1], Some(persons));
        b.set(&[0, 0, 2], ratio(hours, persons));
        b.finish()
    }

    fn i7(&self) -> Table {
        let mut b = Builder::new(
            Figure::I7,
            vec![self.region_dim(), self.tid(false)],
            &Ctx::rate_measures(Quantity::Share),
        );
        let mut over = 0.0;
        let mut home = 0.0;
        for held in self.holdings_on(self.query.date).values() {
            let home_hours: Vec<u64> = held
                .iter()
                .filter(|(c, _)| c.is_home())
                .map(|(_, h)| *h)
                .collect();
            if !home_hours.is_empty() {
                home += 1.0;
                // More than 35.5 hours: more than 3550 centihours, compared exactly.
                if home_hours.iter().sum::<u64>() > 3550 {
                    over += 1.0;
                }
            }
        }
        b.table.measures[1].quantity = Quantity::Persons;
        b.table.dimensions[2].categories[1].label = "personer med hjemmetjenester".into();
        b.set(&[0, 0, 0], Some(over));
        b.set(&[0, 0, 1], Some(home));
        b.set(&[0, 0, 2], ratio(over, home));
        b.finish()
    }

    fn i8(&self) -> Table {
        let groups = vec![
            category("home_0_66", "hjemmetjenester 0-66 år"),
            category("home_67", "hjemmetjenester 67+ år"),
            category("long_term", "langtidsopphold"),
        ];
        let mut b = Builder::new(
            Figure::I8,
            vec![
                self.region_dim(),
                plain("Gruppe", "gruppe", groups),
                self.tid(false),
            ],
            &[
                M(
                    "omfattende",
                    "omfattende bistandsbehov",
                    Quantity::Persons,
                    None,
                    None,
                ),
                M("personer", "personer", Quantity::Persons, None, None),
                M("andel", "andel", Quantity::Share, Some(0), Some(1)),
            ],
        );
        let day = self.query.date;
        for (pseudonym, held) in self.holdings_on(day) {
            let Some(person) = self.person(&pseudonym) else {
                continue;
            };
            let extensive = need_level(person, day) == NeedLevel::Extensive;
            let age = self.age_on_date(person);
            let mut in_groups = Vec::new();
            if held.iter().any(|(c, _)| c.is_home()) {
                in_groups.push(if age <= 66 { 0 } else { 1 });
            }
            if held.iter().any(|(c, _)| c.is_long()) {
                in_groups.push(2);
            }
            for gi in in_groups {
                b.add(&[0, gi, 0, 1], 1.0);
                if extensive {
                    b.add(&[0, gi, 0, 0], 1.0);
                }
            }
        }
        for gi in 0..3 {
            let share = ratio(b.get(&[0, gi, 0, 0]), b.get(&[0, gi, 0, 1]));
            b.set(&[0, gi, 0, 2], share);
        }
        b.finish()
    }

    fn i9(&mut self) -> Table {
        let mut b = Builder::new(
            Figure::I9,
            vec![self.region_dim(), self.tid(true)],
            &Ctx::rate_measures(Quantity::Per1000),
        );
        let period = self.query.period.clone();
        let numerator = self
            .codes_during(&period)
            .iter()
            .filter(|(p, codes)| {
                codes.iter().any(|c| c.is_short())
                    && self
                        .person(p)
                        .is_some_and(|p| AGE_80_PLUS.contains(self.age_in_period(p)))
            })
            .count() as f64;
        let denominator = self.population(period.to, None, &AGE_80_PLUS);
        b.set(&[0, 0, 0], Some(numerator));
        b.set(&[0, 0, 1], Some(denominator));
        b.set(&[0, 0, 2], ratio(numerator * 1000.0, denominator));
        b.finish()
    }

    /// Code-21 residents on D (aged at least `min_age`).
    fn residents(&self, min_age: u16) -> Vec<&Person> {
        self.holdings_on(self.query.date)
            .iter()
            .filter(|(_, held)| held.iter().any(|(c, _)| c.is_long()))
            .filter_map(|(p, _)| self.person(p))
            .filter(|p| self.age_on_date(p) >= min_age)
            .collect()
    }

    fn in_window(&self, date: Date) -> bool {
        let d = self.query.date;
        d.add_days(-365) < date && date <= d
    }

    /// I10, I11, I13: residents with a check of `kind` within 12 months up to D.
    fn resident_check(&self, kind: CheckKind, min_age: u16) -> Table {
        let mut b = Builder::new(
            self.query.figure,
            vec![self.region_dim(), self.tid(false)],
            &Ctx::rate_measures(Quantity::Share),
        );
        let residents = self.residents(min_age);
        let with = residents
            .iter()
            .filter(|p| {
                p.checks
                    .iter()
                    .any(|c| c.kind == kind && self.in_window(c.date))
            })
            .count() as f64;
        let all = residents.len() as f64;
        b.table.measures[1].quantity = Quantity::Persons;
        b.set(&[0, 0, 0], Some(with));
        b.set(&[0, 0, 1], Some(all));
        b.set(&[0, 0, 2], ratio(with, all));
        b.finish()
    }

    fn i12(&self) -> Table {
        let mut b = Builder::new(
            Figure::I12,
            vec![self.region_dim(), self.tid(false)],
            &[
                M(
                    "kartlagt",
                    "kartlagt ernæring",
                    Quantity::Persons,
                    None,
                    None,
                ),
                M(
                    "beboere_67",
                    "langtidsbeboere 67+",
                    Quantity::Persons,
                    None,
                    None,
                ),
                M(
                    "andel_kartlagt",
                    "andel kartlagt",
                    Quantity::Share,
                    Some(0),
                    Some(1),
                ),
                M("risiko", "i ernæringsrisiko", Quantity::Persons, None, None),
                M(
                    "andel_risiko",
                    "andel i risiko av kartlagte",
                    Quantity::Share,
                    Some(3),
                    Some(0),
                ),
                M("plan", "med ernæringsplan", Quantity::Persons, None, None),
                M(
                    "andel_plan",
                    "andel med plan av dem i risiko",
                    Quantity::Share,
                    Some(5),
                    Some(3),
                ),
            ],
        );
        let residents = self.residents(67);
        let (mut screened, mut at_risk, mut plan) = (0.0, 0.0, 0.0);
        for person in &residents {
            // The latest screening in the window gives at-risk and plan (SPEC 5.4).
            let latest = person
                .checks
                .iter()
                .filter(|c| c.kind == CheckKind::NutritionScreening && self.in_window(c.date))
                .max_by_key(|c| c.date);
            if let Some(check) = latest {
                screened += 1.0;
                if check.at_risk == Some(true) {
                    at_risk += 1.0;
                    if check.plan_made == Some(true) {
                        plan += 1.0;
                    }
                }
            }
        }
        let all = residents.len() as f64;
        for (i, v) in [
            Some(screened),
            Some(all),
            ratio(screened, all),
            Some(at_risk),
            ratio(at_risk, screened),
            Some(plan),
            ratio(plan, at_risk),
        ]
        .into_iter()
        .enumerate()
        {
            b.set(&[0, 0, i], v);
        }
        b.finish()
    }

    fn i14(&mut self) -> Table {
        let mut b = Builder::new(
            Figure::I14,
            vec![self.region_dim(), alder(), kjonn(), self.tid(true)],
            &Ctx::rate_measures(Quantity::Share),
        );
        let period = self.query.period.clone();
        for pseudonym in self.codes_during(&period).keys() {
            let Some(person) = self.person(pseudonym) else {
                continue;
            };
            let age = self.age_in_period(person);
            for ai in (0..ALDER.len()).filter(|&ai| ALDER[ai].contains(age)) {
                b.add(&[0, ai, sex_index(person.sex), 0, 0], 1.0);
                b.add(&[0, ai, 3, 0, 0], 1.0);
            }
        }
        let sexes = [Some(Sex::Male), Some(Sex::Female), Some(Sex::Unknown), None];
        for (ai, band) in ALDER.iter().enumerate() {
            for (si, sex) in sexes.iter().enumerate() {
                let population = self.population(period.to, *sex, band);
                let n = b.get(&[0, ai, si, 0, 0]);
                b.set(&[0, ai, si, 0, 1], Some(population));
                b.set(&[0, ai, si, 0, 2], ratio(n, population));
            }
        }
        b.finish()
    }

    fn percentile_measures(count: &'static str) -> [M; 3] {
        [
            M("antall", count, Quantity::Persons, None, None),
            M(
                "median",
                "median, dager",
                Quantity::Percentile,
                Some(0),
                None,
            ),
            M(
                "p90",
                "90-persentil, dager",
                Quantity::Percentile,
                Some(0),
                None,
            ),
        ]
    }

    fn set_percentiles(b: &mut Builder, base: &[usize], days: &mut [i64]) {
        days.sort_unstable();
        let mut coords = base.to_vec();
        let last = coords.len() - 1;
        coords[last] = 0;
        b.set(&coords, Some(days.len() as f64));
        coords[last] = 1;
        b.set(&coords, percentile(days, 0.5).map(|d| d as f64));
        coords[last] = 2;
        b.set(&coords, percentile(days, 0.9).map(|d| d as f64));
    }

    fn i15(&self) -> Table {
        let mut b = Builder::new(
            Figure::I15,
            vec![self.region_dim(), group_dim(false), self.tid(true)],
            &Ctx::percentile_measures("vedtak med søknad"),
        );
        let period = &self.query.period;
        let mut days: Vec<Vec<i64>> = vec![Vec::new(); ServiceGroup::ALL.len()];
        for service in &self.snapshot.services {
            for decision in service.decisions.iter().filter(|d| period.contains(d.date)) {
                let (Some(applied), Some(gi)) = (
                    decision.application,
                    ServiceGroup::ALL
                        .iter()
                        .position(|g| *g == decision.code.group()),
                ) else {
                    continue;
                };
                days[gi].push(i64::from(applied.days_until(decision.date)));
            }
        }
        for (gi, values) in days.iter_mut().enumerate() {
            Ctx::set_percentiles(&mut b, &[0, gi, 0, 0], values);
        }
        b.finish()
    }

    fn i16(&self) -> Table {
        let mut measures = Ctx::percentile_measures("oppstarter").to_vec();
        measures.push(M(
            "ikke_startet",
            "innvilget, ikke startet på datoen",
            Quantity::Persons,
            None,
            None,
        ));
        let mut b = Builder::new(
            Figure::I16,
            vec![self.region_dim(), group_dim(false), self.tid(true)],
            &measures,
        );
        let period = &self.query.period;
        let day = self.query.date;
        let mut days: Vec<Vec<i64>> = vec![Vec::new(); ServiceGroup::ALL.len()];
        let mut waiting: Vec<HashSet<Pseudonym>> =
            vec![HashSet::default(); ServiceGroup::ALL.len()];
        for service in &self.snapshot.services {
            let Some(e) = service.episode.as_ref().filter(|e| e.granted) else {
                continue;
            };
            let Some(gi) = ServiceGroup::ALL.iter().position(|g| *g == e.code.group()) else {
                continue;
            };
            if let Some(start) = e.start.filter(|s| period.contains(*s)) {
                days[gi].push(i64::from(e.decision_date.days_until(start)));
            }
            let not_started = e.decision_date <= day && e.start.is_none_or(|s| day < s);
            if not_started
                && self
                    .person(&service.person)
                    .is_some_and(|p| p.alive_on(day))
            {
                waiting[gi].insert(service.person);
            }
        }
        for (gi, values) in days.iter_mut().enumerate() {
            Ctx::set_percentiles(&mut b, &[0, gi, 0, 0], values);
            b.set(&[0, gi, 0, 3], Some(waiting[gi].len() as f64));
        }
        b.finish()
    }

    fn i17(&self) -> Table {
        let mut b = Builder::new(
            Figure::I17,
            vec![self.region_dim(), self.tid(false)],
            &[
                M(
                    "venter",
                    "på venteliste på datoen",
                    Quantity::Persons,
                    None,
                    None,
                ),
                M(
                    "oppstarter",
                    "langtidsopphold startet i perioden etter venteliste",
                    Quantity::Persons,
                    None,
                    None,
                ),
                M(
                    "median",
                    "median ventetid, dager",
                    Quantity::Percentile,
                    Some(1),
                    None,
                ),
            ],
        );
        let day = self.query.date;
        let period = &self.query.period;
        // Code-21 starts per municipality and person.
        let mut starts: HashMap<(&str, Pseudonym), Vec<Date>> = HashMap::default();
        for service in &self.snapshot.services {
            if let Some(start) = service
                .episode
                .as_ref()
                .filter(|e| e.granted && e.code.is_long())
                .and_then(|e| e.start)
            {
                starts
                    .entry((service.municipality.as_str(), service.person))
                    .or_default()
                    .push(start);
            }
        }
        let mut on_list: HashSet<Pseudonym> = HashSet::default();
        let mut entries: HashMap<(&str, Pseudonym), Vec<Date>> = HashMap::default();
        for entry in &self.snapshot.waiting {
            entries
                .entry((entry.municipality.as_str(), entry.person))
                .or_default()
                .push(entry.date);
        }
        for ((municipality, person), dates) in &entries {
            let person_starts = starts
                .get(&(*municipality, *person))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let alive = self.person(person).is_some_and(|p| p.alive_on(day));
            let waiting = dates.iter().any(|entry| {
                *entry <= day && !person_starts.iter().any(|s| *entry <= *s && *s <= day)
            });
            if alive && waiting {
                on_list.insert(*person);
            }
        }
        let mut waits: Vec<i64> = Vec::new();
        for ((municipality, person), person_starts) in &starts {
            let Some(dates) = entries.get(&(*municipality, *person)) else {
                continue;
            };
            for start in person_starts.iter().filter(|s| period.contains(**s)) {
                // The earliest entry still open when the stay starts: no earlier start
                // between it and this one.
                let open = dates
                    .iter()
                    .filter(|entry| {
                        **entry <= *start
                            && !person_starts.iter().any(|s| **entry <= *s && s < start)
                    })
                    .min();
                if let Some(entry) = open {
                    waits.push(i64::from(entry.days_until(*start)));
                }
            }
        }
        waits.sort_unstable();
        b.set(&[0, 0, 0], Some(on_list.len() as f64));
        b.set(&[0, 0, 1], Some(waits.len() as f64));
        b.set(&[0, 0, 2], percentile(&waits, 0.5).map(|d| d as f64));
        b.finish()
    }

    fn i18(&self) -> Table {
        let mut b = Builder::new(
            Figure::I18,
            vec![self.region_dim(), self.tid(true)],
            &Ctx::rate_measures(Quantity::Share),
        );
        // I18 counts stays, not persons (SPEC 5.2).
        b.table.dimensions[2].categories[0].label =
            "rehabiliteringsopphold avsluttet, ikke død eller til institusjon".into();
        b.table.dimensions[2].categories[1].label = "rehabiliteringsopphold avsluttet".into();
        b.table.measures[1].quantity = Quantity::Persons;
        let period = &self.query.period;
        let (mut home, mut ended) = (0.0, 0.0);
        for e in self
            .snapshot
            .services
            .iter()
            .filter_map(|s| s.episode.as_ref())
        {
            if e.code.number() != 19 || !e.granted {
                continue;
            }
            if let Some((end, reason)) = e.end.filter(|(d, _)| period.contains(*d)) {
                let _ = end;
                ended += 1.0;
                if !matches!(reason, EndReason::Died | EndReason::ToInstitution) {
                    home += 1.0;
                }
            }
        }
        b.set(&[0, 0, 0], Some(home));
        b.set(&[0, 0, 1], Some(ended));
        b.set(&[0, 0, 2], ratio(home, ended));
        b.finish()
    }
}

/// Need level (bistandsbehov) of SPEC 5.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeedLevel {
    /// Fewer than 8 of the 15 need variables valid, or no assessment.
    Unknown,
    /// Some or limited.
    SomeLimited,
    /// Medium to large.
    MediumToLarge,
    /// Extensive.
    Extensive,
}

/// The need level from a person's latest assessment on or before `day`.
pub fn need_level(person: &Person, day: Date) -> NeedLevel {
    let Some((_, scores)) = person
        .assessments
        .iter()
        .rev()
        .find(|(date, _)| *date <= day)
    else {
        return NeedLevel::Unknown;
    };
    need_level_of(scores)
}

/// The need level of one assessment's scores.
pub fn need_level_of(scores: &[(Variable, u8)]) -> NeedLevel {
    let valid: Vec<(Area, f64)> = scores
        .iter()
        .filter(|(v, s)| (1..=5).contains(s) && v.area() != Area::Senses)
        .map(|(v, s)| (v.area(), f64::from(*s)))
        .collect();
    if valid.len() < 8 {
        return NeedLevel::Unknown;
    }
    let mean = |area: Area| {
        let values: Vec<f64> = valid
            .iter()
            .filter(|(a, _)| *a == area)
            .map(|(_, s)| *s)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let (social, practical, personal) = (
        mean(Area::SocialCognitive),
        mean(Area::Practical),
        mean(Area::PersonalCare),
    );
    if personal.is_some_and(|m| m >= 3.5) || social.is_some_and(|m| m >= 3.5) {
        NeedLevel::Extensive
    } else if [social, practical, personal]
        .iter()
        .any(|m| m.is_some_and(|m| m >= 2.5))
    {
        NeedLevel::MediumToLarge
    } else {
        NeedLevel::SomeLimited
    }
}

/// The outcome check used by tests and callers that count decisions.
pub fn is_granted(outcome: Outcome) -> bool {
    outcome == Outcome::Granted
}
