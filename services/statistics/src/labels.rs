//! Labels of published tables in Norwegian (the default) and English: titles and
//! descriptions of every figure, dimension labels, category labels (official
//! municipality and county names from the shipped registry, `refdata/`), and units.
//!
//! The figures themselves (the pure core) label their categories in Norwegian; this
//! module turns a computed table into the language asked for. A label without an
//! English form stays Norwegian: a unit test checks that every label of every figure
//! has one, so a new figure or measure cannot ship half-translated.

use kpr_domain::municipality::Registry;
use kpr_domain::service::ServiceCode;
use kpr_projection::figures::Figure;
use kpr_projection::population::Region;
use kpr_projection::table::{Quantity, Table};

use crate::error::StatsError;

/// The language of labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Lang {
    /// Norwegian (bokmål): the default, as on Statistics Norway's own pages.
    #[default]
    No,
    /// English.
    En,
}

impl Lang {
    /// Parses `lang=`: `no` (or `nb`) and `en`.
    pub fn parse(text: &str) -> Result<Lang, StatsError> {
        match text.to_ascii_lowercase().as_str() {
            "no" | "nb" | "nob" => Ok(Lang::No),
            "en" | "eng" => Ok(Lang::En),
            other => Err(StatsError::BadRequest(format!(
                "lang {other:?}: use no (Norwegian, the default) or en (English)"
            ))),
        }
    }

    /// The code answers carry (`no` or `en`).
    pub fn code(self) -> &'static str {
        match self {
            Lang::No => "no",
            Lang::En => "en",
        }
    }

    /// `no` or `en` text by language.
    pub fn pick<'a>(self, no: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::No => no,
            Lang::En => en,
        }
    }
}

/// Title of a figure.
pub fn title(figure: Figure, lang: Lang) -> &'static str {
    let no = match figure {
        Figure::T1 => "Mottakere i perioden, etter tjeneste, alder og kjønn",
        Figure::T2 => "Mottakere på datoen, etter tjeneste, alder og kjønn",
        Figure::T3 => "Timer per uke på datoen, etter tjeneste",
        Figure::T4 => "Oppholdsdøgn i perioden, etter tjeneste",
        Figure::I1 => "Innbyggere 80 år og eldre på langtidsopphold",
        Figure::I2 => "Innbyggere 80 år og eldre i institusjon",
        Figure::I3 => "Innbyggere 80 år og eldre med hjemmetjenester",
        Figure::I4 => "Brukere per 1000 innbyggere, etter tjenestegruppe og alder",
        Figure::I5 => "Gjennomsnittlige timer per uke, helsetjenester i hjemmet",
        Figure::I6 => "Gjennomsnittlige timer per uke, alle timetjenester",
        Figure::I7 => "Andel hjemmetjenestebrukere med mer enn 35,5 timer per uke",
        Figure::I8 => "Andel med omfattende bistandsbehov",
        Figure::I9 => "Korttidsopphold per 1000 innbyggere 80 år og eldre",
        Figure::I10 => "Langtidsbeboere med legeundersøkelse siste 12 måneder",
        Figure::I11 => "Langtidsbeboere 67 år og eldre med legemiddelgjennomgang siste 12 måneder",
        Figure::I12 => "Langtidsbeboere 67 år og eldre kartlagt for ernæring siste 12 måneder",
        Figure::I13 => "Langtidsbeboere med tannhelsekontroll siste 12 måneder",
        Figure::I14 => "Dekningsgrad i løpet av året, etter alder og kjønn",
        Figure::I15 => "Saksbehandlingstid fra søknad til vedtak (dager)",
        Figure::I16 => "Ventetid fra vedtak til oppstart (dager)",
        Figure::I17 => "Venteliste for langtidsopphold",
        Figure::I18 => "Rehabiliteringsopphold avsluttet med personen hjem",
    };
    lang.pick(no, figure.title())
}

/// What a figure counts, in one sentence (SPEC 5.2 in plain words).
pub fn description(figure: Figure, lang: Lang) -> &'static str {
    let (no, en) = match figure {
        Figure::T1 => (
            "Personer med minst én dag med tjenesten i perioden, etter tjeneste, alder og kjønn.",
            "Persons with at least one day of the service during the period, by service, age and sex.",
        ),
        Figure::T2 => (
            "Personer med tjenesten aktiv på datoen, etter tjeneste, alder og kjønn.",
            "Persons with the service active on the date, by service, age and sex.",
        ),
        Figure::T3 => (
            "Sum og gjennomsnitt av vedtatte timer per uke for timetjenester aktive på datoen.",
            "Sum and mean of decided hours per week of hour services active on the date.",
        ),
        Figure::T4 => (
            "Oppholdsdøgn i institusjon innenfor perioden, etter tjeneste.",
            "Days of institution stay within the period, by service.",
        ),
        Figure::I1 => (
            "Andel av innbyggerne 80 år og eldre som er på langtidsopphold på datoen.",
            "Share of inhabitants aged 80 or older in a long-term stay on the date.",
        ),
        Figure::I2 => (
            "Andel av innbyggerne 80 år og eldre som er i institusjon på datoen.",
            "Share of inhabitants aged 80 or older in an institution on the date.",
        ),
        Figure::I3 => (
            "Andel av innbyggerne 80 år og eldre som mottar hjemmetjenester på datoen.",
            "Share of inhabitants aged 80 or older receiving home services on the date.",
        ),
        Figure::I4 => (
            "Brukere på datoen per 1000 innbyggere, etter tjenestegruppe og alder.",
            "Users on the date per 1000 inhabitants, by service group and age.",
        ),
        Figure::I5 => (
            "Gjennomsnittlige vedtatte timer per uke for helsetjenester i hjemmet på datoen.",
            "Mean decided hours per week of home nursing on the date.",
        ),
        Figure::I6 => (
            "Gjennomsnittlige vedtatte timer per uke over alle timetjenester på datoen.",
            "Mean decided hours per week over all hour services on the date.",
        ),
        Figure::I7 => (
            "Andel av hjemmetjenestebrukerne med mer enn 35,5 vedtatte timer per uke på datoen.",
            "Share of home-service users with more than 35.5 decided hours per week on the date.",
        ),
        Figure::I8 => (
            "Andel av brukerne med omfattende bistandsbehov etter siste funksjonskartlegging.",
            "Share of users with extensive needs by their latest functional assessment.",
        ),
        Figure::I9 => (
            "Korttidsopphold startet i perioden per 1000 innbyggere 80 år og eldre.",
            "Short-term stays started during the period per 1000 inhabitants aged 80 or older.",
        ),
        Figure::I10 => (
            "Andel langtidsbeboere med legeundersøkelse de siste 12 månedene før datoen.",
            "Share of long-term residents with a physician's check in the 12 months before the date.",
        ),
        Figure::I11 => (
            "Andel langtidsbeboere 67 år og eldre med legemiddelgjennomgang de siste 12 månedene.",
            "Share of long-term residents aged 67 or older with a medication review in the last 12 months.",
        ),
        Figure::I12 => (
            "Langtidsbeboere 67 år og eldre kartlagt for ernæring, i risiko, og med plan.",
            "Long-term residents aged 67 or older screened for nutrition, at risk, and with a plan.",
        ),
        Figure::I13 => (
            "Andel langtidsbeboere med tannhelsekontroll de siste 12 månedene før datoen.",
            "Share of long-term residents with a dental check in the 12 months before the date.",
        ),
        Figure::I14 => (
            "Personer med minst én tjeneste i løpet av perioden som andel av innbyggerne, etter alder og kjønn.",
            "Persons with at least one service during the period as a share of inhabitants, by age and sex.",
        ),
        Figure::I15 => (
            "Dager fra søknad til vedtak for vedtak fattet i perioden, median og 90-persentil.",
            "Days from application to decision for decisions made during the period, median and 90th percentile.",
        ),
        Figure::I16 => (
            "Dager fra innvilget vedtak til oppstart for tjenester startet i perioden.",
            "Days from a granted decision to the start for services started during the period.",
        ),
        Figure::I17 => (
            "Personer på venteliste for langtidsopphold på datoen, og ventetid for dem som startet.",
            "Persons on the long-term stay waiting list on the date, and waiting time of those who started.",
        ),
        Figure::I18 => (
            "Andel rehabiliteringsopphold avsluttet i perioden der personen dro hjem.",
            "Share of rehabilitation stays ended during the period with the person going home.",
        ),
    };
    lang.pick(no, en)
}

/// Whether a figure is "on the date" (status on D) or "during the period" (P).
pub fn reference_kind(figure: Figure) -> &'static str {
    if kpr_projection::figures::uses_period(figure) {
        "period"
    } else {
        "date"
    }
}

/// Label of a dimension by its id (SSB's ids).
pub fn dimension_label(id: &str, norwegian: &str, lang: Lang) -> String {
    match lang {
        Lang::No => norwegian.to_string(),
        Lang::En => match (id, norwegian) {
            ("Region", _) => "region",
            ("Tjeneste", "tjenestegruppe") => "service group",
            ("Tjeneste", _) => "service",
            ("Alder", _) => "age",
            ("Kjonn", _) => "sex",
            ("Tid", _) => "time",
            ("ContentsCode", _) => "contents",
            _ => norwegian,
        }
        .to_string(),
    }
}

/// The name of a region: the official municipality or county name, or the nation.
pub fn region_name(region: &Region, lang: Lang) -> String {
    let registry = Registry::get();
    match region {
        Region::Nation => lang.pick("Hele landet", "The whole country").to_string(),
        Region::County(code) => registry
            .counties()
            .find(|(c, _)| c == code)
            .map_or_else(|| format!("fylke {code}"), |(_, name)| name.to_string()),
        Region::Municipality(code) => match registry.municipality(code) {
            None => format!("kommune {code}"),
            // Two municipalities share a name (Herøy, Våler): named with their county,
            // as Statistics Norway does, so that labels identify.
            Some(m)
                if registry
                    .municipalities()
                    .filter(|o| o.name == m.name)
                    .count()
                    > 1 =>
            {
                let county = m.county_name.split(" - ").next().unwrap_or(&m.county_name);
                format!("{} ({county})", m.name)
            }
            Some(m) => m.name.clone(),
        },
    }
}

/// The region of a published region code (`0301`, `EK03`, `EAK`).
pub fn region_of_code(code: &str) -> Option<Region> {
    if code == "EAK" {
        return Some(Region::Nation);
    }
    if let Some(county) = code.strip_prefix("EK") {
        return Registry::get()
            .counties()
            .any(|(c, _)| c == county)
            .then(|| Region::County(county.to_string()));
    }
    Registry::get()
        .municipality(code)
        .map(|m| Region::Municipality(m.code.as_str().to_string()))
}

/// Norwegian category labels with their English form. Service names come from the
/// service catalogue (`name_en`); region names are names, the same in both languages.
const ENGLISH: &[(&str, &str)] = &[
    // Kjonn
    ("Menn", "Males"),
    ("Kvinner", "Females"),
    ("Ukjent", "Unknown"),
    ("Begge kjønn", "Both sexes"),
    // Alder
    ("0-17 år", "0-17 years"),
    ("18-49 år", "18-49 years"),
    ("50-66 år", "50-66 years"),
    ("67-79 år", "67-79 years"),
    ("80-89 år", "80-89 years"),
    ("90 år eller eldre", "90 years or older"),
    ("0-66 år", "0-66 years"),
    ("80 år eller eldre", "80 years or older"),
    ("Alle aldre", "All ages"),
    // Tjeneste (groups)
    ("hjemmetjenester", "home services"),
    ("aktivitetstilbud", "activity services"),
    ("velferdsteknologi", "welfare technology"),
    ("institusjonstjenester", "institution services"),
    ("tvang", "coercion measures"),
    ("bolig", "housing"),
    ("alle tjenester", "all services"),
    ("hjemmetjenester 0-66 år", "home services 0-66 years"),
    ("hjemmetjenester 67+ år", "home services 67+ years"),
    ("langtidsopphold", "long-term stay"),
    // ContentsCode
    ("personer", "persons"),
    ("timer per uke, sum", "hours per week, sum"),
    ("timer per uke, gjennomsnitt", "hours per week, mean"),
    ("oppholdsdøgn", "days of stay"),
    ("teller (personer)", "numerator (persons)"),
    ("nevner", "denominator"),
    ("andel", "share"),
    ("per 1000", "per 1000"),
    ("i ernæringsrisiko", "at nutritional risk"),
    ("med ernæringsplan", "with a nutrition plan"),
    ("kartlagt ernæring", "screened for nutrition"),
    ("andel kartlagt", "share screened"),
    (
        "andel i risiko av kartlagte",
        "share at risk of those screened",
    ),
    (
        "andel med plan av dem i risiko",
        "share with a plan of those at risk",
    ),
    ("langtidsbeboere 67+", "long-term residents 67+"),
    ("omfattende bistandsbehov", "extensive needs"),
    ("median, dager", "median, days"),
    ("90-persentil, dager", "90th percentile, days"),
    ("median ventetid, dager", "median waiting time, days"),
    ("på venteliste på datoen", "on the waiting list on the date"),
    (
        "innvilget, ikke startet på datoen",
        "granted, not started on the date",
    ),
    (
        "langtidsopphold startet i perioden etter venteliste",
        "long-term stays started during the period after the waiting list",
    ),
    ("personer med hjemmetjenester", "persons with home services"),
    ("vedtak med søknad", "decisions with an application"),
    ("oppstarter", "starts"),
    (
        "rehabiliteringsopphold avsluttet",
        "rehabilitation stays ended",
    ),
    (
        "rehabiliteringsopphold avsluttet, ikke død eller til institusjon",
        "rehabilitation stays ended, not by death or to an institution",
    ),
];

/// Norwegian labels of the service groups (the figures give their codes).
const GROUPS_NO: &[(&str, &str)] = &[
    ("home", "hjemmetjenester"),
    ("activity", "aktivitetstilbud"),
    ("welfare_technology", "velferdsteknologi"),
    ("institution", "institusjonstjenester"),
    ("coercion", "tvang"),
    ("housing", "bolig"),
    ("all", "alle tjenester"),
];

/// The English form of a Norwegian label, if one is known.
pub fn english(norwegian: &str) -> Option<&'static str> {
    ENGLISH
        .iter()
        .find(|(no, _)| *no == norwegian)
        .map(|(_, en)| *en)
}

/// Unit base of a measure and the decimals published.
pub fn unit(quantity: Quantity, lang: Lang) -> (&'static str, u32) {
    let (no, en, decimals) = match quantity {
        Quantity::Persons => ("personer", "persons", 0),
        Quantity::Population => ("innbyggere", "inhabitants", 0),
        Quantity::Hours => ("timer per uke", "hours per week", 1),
        Quantity::Days => ("dager", "days", 0),
        Quantity::Mean => ("gjennomsnitt", "mean", 1),
        Quantity::Share => ("andel", "share", 3),
        Quantity::Per1000 => ("per 1000", "per 1000", 1),
        Quantity::Percentile => ("dager", "days", 0),
    };
    (lang.pick(no, en), decimals)
}

/// Labels `table` in `lang`: title, dimensions, categories and region names.
pub fn localize(table: &mut Table, lang: Lang) {
    if let Some(figure) = Figure::parse(&table.figure) {
        table.label = title(figure, lang).to_string();
    }
    for dimension in &mut table.dimensions {
        let grouped = dimension.label == "tjenestegruppe";
        dimension.label = dimension_label(&dimension.id, &dimension.label, lang);
        for category in &mut dimension.categories {
            match dimension.id.as_str() {
                "Region" => {
                    if let Some(region) = region_of_code(&category.code) {
                        category.label = region_name(&region, lang);
                    }
                }
                "Tjeneste" if !grouped => {
                    if let Some(service) = category
                        .code
                        .parse::<u32>()
                        .ok()
                        .and_then(|n| ServiceCode::from_number(n).ok())
                    {
                        let info = service.info();
                        category.label = lang.pick(info.name_nb, info.name_en).to_string();
                    }
                }
                _ => {
                    let norwegian = GROUPS_NO
                        .iter()
                        .find(|(code, _)| grouped && *code == category.code)
                        .map_or(category.label.as_str(), |(_, no)| *no)
                        .to_string();
                    category.label = match lang {
                        Lang::No => norwegian,
                        Lang::En => english(&norwegian).unwrap_or(&norwegian).to_string(),
                    };
                }
            }
        }
    }
}

/// Rounds every value of a published (not exact) table to the decimals its measure
/// declares, half away from zero on the decimal digits. Exact (operator) tables keep
/// full precision.
pub fn round(table: &mut Table) {
    if table.meta.exact {
        return;
    }
    let measures = table.measures.len().max(1);
    for (offset, value) in table.values.iter_mut().enumerate() {
        let Some(v) = value.as_mut() else { continue };
        let Some(measure) = table.measures.get(offset % measures) else {
            continue;
        };
        let (_, decimals) = unit(measure.quantity, Lang::No);
        *v = round_to(*v, decimals);
    }
}

/// `value` rounded to `decimals` decimal digits. Printing with that precision and
/// reading back gives the decimal nearest to the binary value, so 0.1234 becomes
/// 0.123 exactly as a reader expects (no 0.12300000000000001).
pub fn round_to(value: f64, decimals: u32) -> f64 {
    if !value.is_finite() {
        return value;
    }
    let text = format!("{value:.*}", decimals as usize);
    text.parse().unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpr_projection::figures::{Query, compute};
    use kpr_projection::model::ReadModel;
    use kpr_projection::population::Population;

    fn every_table() -> Vec<Table> {
        let model = ReadModel::new();
        Figure::ALL
            .iter()
            .map(|f| {
                let query = Query::for_year(*f, Region::Municipality("0301".into()), 2024)
                    .expect("a valid year");
                compute(&model, Population::embedded(), &query)
            })
            .collect()
    }

    #[test]
    fn every_label_of_every_figure_has_an_english_form() {
        let mut missing = Vec::new();
        for mut table in every_table() {
            let mut norwegian = table.clone();
            localize(&mut norwegian, Lang::No);
            localize(&mut table, Lang::En);
            assert_eq!(table.label, norwegian_title(&norwegian).1);
            for (d, (en, no)) in table
                .dimensions
                .iter()
                .zip(&norwegian.dimensions)
                .enumerate()
            {
                assert_ne!(en.label, "", "{} dimension {d}", table.figure);
                if en.id != "Tid" && en.id != "Region" {
                    for (ce, cn) in en.categories.iter().zip(&no.categories) {
                        let untranslated = ce.label == cn.label
                            && english(&cn.label).is_none()
                            && !ce.label.chars().all(|c| c.is_ascii_digit() || c == ' ');
                        if untranslated {
                            missing.push(format!("{} {}: {:?}", table.figure, en.id, cn.label));
                        }
                    }
                }
            }
            assert_eq!(
                table.dimensions[0].categories[0].label, "Oslo",
                "{}: the region is named",
                table.figure
            );
        }
        assert!(missing.is_empty(), "no English for {missing:#?}");
    }

    fn norwegian_title(table: &Table) -> (&'static str, &'static str) {
        let figure = Figure::parse(&table.figure).expect("a figure");
        (title(figure, Lang::No), title(figure, Lang::En))
    }

    #[test]
    fn norwegian_is_the_default_and_names_regions() {
        let mut tables = every_table();
        let t2 = &mut tables[1];
        localize(t2, Lang::default());
        assert_eq!(
            t2.label,
            "Mottakere på datoen, etter tjeneste, alder og kjønn"
        );
        let kjonn = t2.dimension("Kjonn").expect("Kjonn");
        assert_eq!(t2.dimensions[kjonn].categories[1].label, "Kvinner");
        assert_eq!(
            region_name(&Region::County("46".into()), Lang::En),
            "Vestland"
        );
        assert_eq!(
            region_name(&Region::Municipality("4601".into()), Lang::No),
            "Bergen"
        );
        assert_eq!(
            region_name(&Region::Municipality("1818".into()), Lang::No),
            "Herøy (Nordland)"
        );
        assert_eq!(
            region_name(&Region::Municipality("3114".into()), Lang::No),
            "Våler (Østfold)"
        );
        assert!(Lang::parse("fr").is_err());
        assert_eq!(Lang::parse("EN").ok(), Some(Lang::En));
    }

    #[test]
    fn rounding_keeps_declared_decimals() {
        assert_eq!(round_to(0.123_456, 3), 0.123);
        assert_eq!(round_to(2.0 / 3.0, 1), 0.7);
        assert_eq!(round_to(12.0, 0), 12.0);
        assert_eq!(round_to(-0.04, 1), -0.0);
        assert!(round_to(f64::NAN, 2).is_nan());
    }
}
