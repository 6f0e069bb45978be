//! What a published table carries besides its numbers: the notes a reader must see
//! (a substituted population year, a reference outside the data, another definition
//! version), labels in the language asked for, and values rounded to the decimals
//! each measure declares. Pure: the same table, query, language and data span give
//! the same result.

use kpr_domain::date::Date;
use kpr_projection::figures::{DEFINITION_VERSION, Query};
use kpr_projection::table::Table;

use crate::labels::{self, Lang};

/// Adds the notes, labels `table` in `lang` and rounds it (when not exact). `span` is
/// the earliest and latest effective date of the events the register holds for the
/// table's region, `None` when it holds none.
pub fn present(table: &mut Table, query: &Query, lang: Lang, span: Option<(Date, Date)>) {
    table.meta.notes = notes(table, query, lang, span);
    labels::localize(table, lang);
    labels::round(table);
}

/// The notes of a table, in `lang`.
pub fn notes(table: &Table, query: &Query, lang: Lang, span: Option<(Date, Date)>) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(used), Some(wanted)) = (table.meta.population_year, table.meta.population_wanted)
        && used != wanted
    {
        out.push(match lang {
            Lang::No => format!(
                "Befolkningstallene for 1. januar {wanted} finnes ikke i registeret; tallene for 1. januar {used} er brukt som nevner."
            ),
            Lang::En => format!(
                "The population of 1 January {wanted} is not available; that of 1 January {used} is used as the denominator."
            ),
        });
    }
    let (end, reference) = if query.uses_period() {
        (query.period.to, query.period.code.clone())
    } else {
        (query.date, query.date.to_string())
    };
    match span {
        None => out.push(
            lang.pick(
                "Registeret har ingen hendelser for denne regionen ennå; alle tall er 0 eller udefinerte.",
                "The register holds no events for this region yet; every number is 0 or undefined.",
            )
            .to_string(),
        ),
        Some((first, last)) => {
            if end > last {
                out.push(match lang {
                    Lang::No => format!(
                        "{reference} er etter siste hendelse registeret har for regionen ({last}); tallene er foreløpige og kan endre seg når flere hendelser kommer inn."
                    ),
                    Lang::En => format!(
                        "{reference} is after the last event the register holds for the region ({last}); the numbers are provisional and may change as more events arrive."
                    ),
                });
            }
            if end < first {
                out.push(match lang {
                    Lang::No => format!(
                        "{reference} er før første hendelse registeret har for regionen ({first}); tjenester før den er ikke rapportert hit."
                    ),
                    Lang::En => format!(
                        "{reference} is before the first event the register holds for the region ({first}); services before it were not reported here."
                    ),
                });
            }
        }
    }
    if table.meta.definition_version != DEFINITION_VERSION {
        out.push(match lang {
            Lang::No => format!(
                "Tallene følger definisjonsversjon {}; gjeldende versjon er {DEFINITION_VERSION}.",
                table.meta.definition_version
            ),
            Lang::En => format!(
                "The numbers follow definition version {}; the current version is {DEFINITION_VERSION}.",
                table.meta.definition_version
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpr_projection::figures::{Figure, compute};
    use kpr_projection::model::ReadModel;
    use kpr_projection::population::{Population, Region};

    fn table(figure: Figure, year: i32) -> (Table, Query) {
        let query =
            Query::for_year(figure, Region::Municipality("0301".into()), year).expect("a year");
        let table = compute(&ReadModel::new(), Population::embedded(), &query);
        (table, query)
    }

    fn day(text: &str) -> Date {
        Date::parse(text).expect("a date")
    }

    #[test]
    fn notes_say_what_the_numbers_rest_on() {
        let span = Some((day("2024-01-10"), day("2025-06-30")));
        // 2024-12-31: population of 1 January 2025 (shipped), inside the data.
        let (t, q) = table(Figure::I3, 2024);
        assert!(notes(&t, &q, Lang::No, span).is_empty());
        // 2026-12-31 wants 2027, which is not shipped; and it is after the data.
        let (t, q) = table(Figure::I3, 2026);
        let n = notes(&t, &q, Lang::En, span);
        assert_eq!(n.len(), 2, "{n:?}");
        assert!(n[0].contains("1 January 2027") && n[0].contains("1 January 2026"));
        assert!(n[1].contains("2026-12-31 is after the last event") && n[1].contains("2025-06-30"));
        // A year before the data.
        let (t, q) = table(Figure::T1, 2023);
        let n = notes(&t, &q, Lang::No, span);
        assert!(
            n.iter()
                .any(|n| n.starts_with("2023 er før første hendelse")),
            "{n:?}"
        );
        // A region without events.
        let (t, q) = table(Figure::T2, 2024);
        assert_eq!(notes(&t, &q, Lang::En, None).len(), 1);
    }

    #[test]
    fn published_values_are_rounded_exact_ones_are_not() {
        let (mut t, q) = table(Figure::I3, 2024);
        let rate = t.values.len() - 1;
        t.values[rate] = Some(0.123_456_7);
        let mut exact = t.clone();
        t.meta.exact = false;
        present(&mut t, &q, Lang::No, None);
        assert_eq!(t.values[rate], Some(0.123));
        present(&mut exact, &q, Lang::No, None);
        assert_eq!(exact.values[rate], Some(0.123_456_7));
        assert_eq!(t.dimensions[0].categories[0].label, "Oslo");
    }
}
